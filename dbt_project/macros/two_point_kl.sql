{#
    BLiMP's two-point distributions (Fehlauer et al. 2025, after Warstadt et al. 2020): a model
    restricted to the two sentences of a minimal pair gives the good one

        p = P(good) / (P(good) + P(bad)) = sigmoid(d),   d = log P(good) - log P(bad)

    where d, the log-odds, is a difference of the two whole-sentence log-probabilities. Those are
    -30 to -100 nats, so P(good) and P(bad) themselves are never formed: exp(-745) is 0 in double
    precision and 0 / (0 + 0) is NaN. Everything here works from log-odds:

        softplus(x) = ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|)     (e^-|x| in (0, 1]: no overflow)
        log p       = -softplus(-d)                                   (log sigmoid)
        log (1 - p) = -softplus(d)
        p, 1 - p    = exp of those, so 1 - p keeps its digits when p is near 1

    ln(1 + u) for small u loses u entirely when 1 + u rounds to 1 (u below 1.1e-16), and DuckDB
    has no log1p: `log1p` below uses Goldberg's correction, ln(w) * u / (w - 1) with w = 1 + u
    rounded, which is accurate to a few units in the last place for every u >= 0 (and exactly u
    when w = 1). So log p of a pair the model is sure of, d = 40, is -4.2e-18, not 0.

    two_point_kl(logit_a, logit_b): KL(Bernoulli(p_a) || Bernoulli(p_b)) in nats,

        KL = p_a (log p_a - log p_b) + (1 - p_a) (log (1 - p_a) - log (1 - p_b)).

    When the two log-odds nearly agree the two terms cancel to a KL of about
    p (1 - p) (d_b - d_a)^2 / 2: their rounding, a few 1e-16 nats, is then a relative error of
    about 3e-15 / (d_b - d_a)^2 (3e-9 at a difference of 1e-3, all of it at 1e-8). So for
    |d_b - d_a| < 1e-3 it is the Taylor series of the same divergence, which is the Bregman
    divergence of softplus, KL = softplus(d_b) - softplus(d_a) - p_a (d_b - d_a); with
    D = d_b - d_a, p = p_a, q = 1 - p_a (softplus'' = pq, ''' = pq(q - p), '''' = pq(1 - 6pq)):

        KL = p q D^2 (1/2 + (q - p) D / 6 + (1 - 6 p q) D^2 / 24) + O(D^5)

    whose truncation is below D^3 / 60 relative (2e-11 at the threshold); equal log-odds give
    exactly 0. The result is clamped at 0 from below, greatest(kl, 0): only rounding of a true
    KL of nearly 0 can make it negative, by a few units in the last place of the terms. NULL when
    either log-odds is NULL; an infinite log-probability gives a NaN or infinite KL, which the
    data tests catch (stg_blimp_scores_logprob_in_range, assert_blimp_kl_nonnegative).

    Arguments are SQL expressions and are repeated in the expansion: pass column references.
#}

{% macro log1p(u) -%}
    {#- ln(1 + u) for u >= 0, accurate for small u -#}
    (case when 1.0 + ({{ u }}) = 1.0 then ({{ u }}) else ln(1.0 + ({{ u }})) * ({{ u }}) / ((1.0 + ({{ u }})) - 1.0) end)
{%- endmacro %}


{% macro softplus(x) -%}
    (greatest(({{ x }}), 0.0) + {{ log1p('exp(-abs(' ~ x ~ '))') }})
{%- endmacro %}


{% macro log_sigmoid(x) -%}
    {#- log sigmoid(x) = -softplus(-x); log (1 - sigmoid(x)) is log_sigmoid(-x) -#}
    (-{{ softplus('-(' ~ x ~ ')') }})
{%- endmacro %}


{% macro two_point_kl(logit_a, logit_b) -%}
    {%- set a = '(' ~ logit_a ~ ')' -%}
    {%- set b = '(' ~ logit_b ~ ')' -%}
    {%- set log_p_a = log_sigmoid(a) -%}
    {%- set log_q_a = log_sigmoid('-' ~ a) -%}
    {%- set p_a = 'exp(' ~ log_p_a ~ ')' -%}
    {%- set q_a = 'exp(' ~ log_q_a ~ ')' -%}
    {%- set delta = '(' ~ b ~ ' - ' ~ a ~ ')' -%}
    (case
        -- greatest() skips NULLs: without this, an unknown KL would read as 0
        when {{ a }} is null or {{ b }} is null then cast(null as double)
        else greatest(
            case
                when abs({{ delta }}) < 1e-3 then
                    {{ p_a }} * {{ q_a }} * {{ delta }} * {{ delta }} * (
                        0.5
                        + ({{ q_a }} - {{ p_a }}) * {{ delta }} / 6.0
                        + (1.0 - 6.0 * {{ p_a }} * {{ q_a }}) * {{ delta }} * {{ delta }} / 24.0
                    )
                else
                    {{ p_a }} * ({{ log_p_a }} - {{ log_sigmoid(b) }})
                    + {{ q_a }} * ({{ log_q_a }} - {{ log_sigmoid('-' ~ b) }})
            end,
            0.0
        )
    end)
{%- endmacro %}

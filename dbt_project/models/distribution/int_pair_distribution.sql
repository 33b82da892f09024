-- The distribution of seed disagreement over the contexts of a checkpoint, not only its mean:
-- the statistics llama.cpp's KL-divergence mode prints for two models (tools/perplexity/
-- perplexity.cpp, kl_divergence()), here for every ordered seed pair (a, b) and pooled over the
-- pairs. One row per ordered pair (pooled = false) and one pooled row (pooled = true, seed_a and
-- seed_b NULL) per partition. As llama.cpp, with a the base model and b the one compared to it:
--   KL           KL(p_a || p_b) per context, from the lake; percentiles by linear interpolation
--                between order statistics at fraction * (n - 1), as its percentile() and
--                DuckDB's quantile_cont do.
--   top-1        whether both seeds' most probable token is the same ("same top p"), from the
--                lake's sorted top-k (topk_ids[1]).
--   delta_p      p_b(true token) - p_a(true token) = exp(-surprisal_b) - exp(-surprisal_a), its
--                p_diff = p - p_base; its percentile list (min, 0.1 ... 99.9, max), both tails
--                of a signed change; RMS = sqrt(mean delta_p^2).
--   correlation  Pearson's of the two seeds' per-token surprisal (its Cor(ln(PPL(Q)),
--                ln(PPL(base))) is that of the per-token log-likelihoods: the same number).
-- Standard error of top-1 agreement, per pair: llama.cpp's sqrt(p (1 - p) / (n - 1)) over the
-- n contexts. Pooled: the standard deviation across contexts of each context's agreement share
-- over the pairs, divided by sqrt(n_contexts), which for one pair is that same formula, and does
-- not count a context's pairs as independent draws (agreement of (a, b) and (b, a) is the same
-- event). The pooled KL and delta_p statistics are over every (context, pair) value; since
-- delta_p(b, a) = -delta_p(a, b), the pooled delta_p distribution is symmetric about 0 (mean 0).
-- The pooled correlation is the mean over pairs of the pairs' correlations.
-- Incremental by partition (macros/partitions.sql): each partition's pair_kl and token_stats
-- files are read once.

{{ config(
    materialized='incremental',
    incremental_strategy='replace_partitions',
    partition_inputs=['manifest'],
    on_schema_change='sync_all_columns',
    post_hook="{{ record_partitions() }}",
) }}

{#- (column suffix, fraction): llama.cpp's percentiles (macros/distribution_percentiles.sql) -#}
{%- set kl_percentiles = kl_percentiles() -%}
{%- set delta_p_percentiles = delta_p_percentiles() -%}

{% set partitions = partition_plan().todo %}

{% for p in partitions or [none] %}
select
    {{ partition_columns(p) }},
    seed_a,
    seed_b,
    pooled,
    case when pooled then count(*) filter (where not pooled) over () else 1 end as n_pairs,
    n_tokens,
    kl_mean,
    {%- for name, _ in kl_percentiles %}
    kl_quantiles[{{ loop.index }}] as kl_{{ name }},
    {%- endfor %}
    kl_max,
    top1_agreement,
    case
        when pooled then pooled_top1_agreement_se
        else sqrt(top1_agreement * (1 - top1_agreement) / (n_tokens - 1))
    end as top1_agreement_se,
    delta_p_mean,
    delta_p_rms,
    delta_p_min,
    {%- for name, _ in delta_p_percentiles %}
    delta_p_quantiles[{{ loop.index }}] as delta_p_{{ name }},
    {%- endfor %}
    delta_p_max,
    case
        when pooled then avg(surprisal_corr) filter (where not pooled) over ()
        else surprisal_corr
    end as surprisal_corr

from (
    with tokens as materialized (
        select seed, position, surprisal, exp(-surprisal) as p_true, topk_ids[1] as top1
        from {{ lake_partition('token_stats', p) }} as token_stats
    ),

    pair_tokens as materialized (
        select
            pair_kl.seed_a,
            pair_kl.seed_b,
            pair_kl.position,
            pair_kl.kl,
            seed_a_tokens.surprisal as surprisal_a,
            seed_b_tokens.surprisal as surprisal_b,
            seed_b_tokens.p_true - seed_a_tokens.p_true as delta_p,
            cast(seed_a_tokens.top1 = seed_b_tokens.top1 as double) as same_top1

        from {{ lake_partition('pair_kl', p) }} as pair_kl
        inner join tokens as seed_a_tokens
            on pair_kl.seed_a = seed_a_tokens.seed and pair_kl.position = seed_a_tokens.position
        inner join tokens as seed_b_tokens
            on pair_kl.seed_b = seed_b_tokens.seed and pair_kl.position = seed_b_tokens.position
        where pair_kl.seed_a <> pair_kl.seed_b
    ),

    grouped as (
        select
            seed_a,
            seed_b,
            grouping(seed_a, seed_b) <> 0 as pooled,
            count(*) as n_tokens,
            avg(kl) as kl_mean,
            quantile_cont(kl, [{% for _, fraction in kl_percentiles %}{{ fraction }}{{ ', ' if not loop.last }}{% endfor %}]) as kl_quantiles,
            max(kl) as kl_max,
            avg(same_top1) as top1_agreement,
            avg(delta_p) as delta_p_mean,
            sqrt(avg(delta_p * delta_p)) as delta_p_rms,
            min(delta_p) as delta_p_min,
            quantile_cont(delta_p, [{% for _, fraction in delta_p_percentiles %}{{ fraction }}{{ ', ' if not loop.last }}{% endfor %}]) as delta_p_quantiles,
            max(delta_p) as delta_p_max,
            -- NULL, not NaN, where a seed's surprisal is the same at every context (no correlation)
            nullif(corr(surprisal_a, surprisal_b), 'nan'::double) as surprisal_corr

        from pair_tokens
        group by grouping sets ((seed_a, seed_b), ())
        having count(*) > 0
    ),

    per_context as (
        select avg(same_top1) as top1_share
        from pair_tokens
        group by position
    )

    select
        grouped.*,
        (select stddev_samp(top1_share) / sqrt(count(*)) from per_context) as pooled_top1_agreement_se
    from grouped
) as per_pair_and_pooled
{% if not loop.last %}union all{% endif %}
{% endfor %}

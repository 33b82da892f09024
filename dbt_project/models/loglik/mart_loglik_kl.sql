-- KL divergence between two models estimated from their log-likelihood vectors (Kishino et
-- al. 2026): with l(x_i) = log p(x_i) over the suite's loglik texts, KL ~ Var_i(l_a(x_i) -
-- l_b(x_i)) / 2 nats per text (var_pop), and per byte in bits by the texts' mean UTF-8 length.
-- Two kinds of pair: `seeds`, two seeds at the same step (seed_a < seed_b); `steps`, one seed
-- at two steps (step_a < step_b), the trajectories behind the diffusion exponents. Only
-- checkpoints scored on the same text set (manifest loglik_set_hash) are paired, text by text.
-- A table rebuilt whole: the vectors are short (one value per text).
-- The two kinds are two joins rather than one with an OR: each has its own equality keys (step,
-- or seed), which a hash join can use; an OR would pair every two models of a size per text and
-- filter afterwards (billions of rows at PolyPythia's 154 steps x 10 seeds).

with loglik as materialized (

    select * from {{ ref('int_loglik_scores') }}

),

seed_pairs as (

    select
        'seeds' as pair_kind,
        loglik_a.suite,
        loglik_a.size,
        loglik_a.step as step_a,
        loglik_a.seed as seed_a,
        loglik_b.step as step_b,
        loglik_b.seed as seed_b,
        count(*) as n_texts,
        var_pop(loglik_a.logprob - loglik_b.logprob) / 2 as kl_nats_per_text,
        avg(loglik_a.n_bytes) as mean_bytes_per_text

    from loglik as loglik_a
    inner join loglik as loglik_b
        on loglik_a.suite = loglik_b.suite
        and loglik_a.size = loglik_b.size
        and loglik_a.step = loglik_b.step
        and loglik_a.text_id = loglik_b.text_id
        and loglik_a.seed < loglik_b.seed
    group by loglik_a.suite, loglik_a.size, loglik_a.step, loglik_a.seed, loglik_b.step, loglik_b.seed

),

step_pairs as (

    select
        'steps' as pair_kind,
        loglik_a.suite,
        loglik_a.size,
        loglik_a.step as step_a,
        loglik_a.seed as seed_a,
        loglik_b.step as step_b,
        loglik_b.seed as seed_b,
        count(*) as n_texts,
        var_pop(loglik_a.logprob - loglik_b.logprob) / 2 as kl_nats_per_text,
        avg(loglik_a.n_bytes) as mean_bytes_per_text

    from loglik as loglik_a
    inner join loglik as loglik_b
        on loglik_a.suite = loglik_b.suite
        and loglik_a.size = loglik_b.size
        and loglik_a.seed = loglik_b.seed
        and loglik_a.text_id = loglik_b.text_id
        and loglik_a.step < loglik_b.step
        and loglik_a.loglik_set_hash is not distinct from loglik_b.loglik_set_hash
    group by loglik_a.suite, loglik_a.size, loglik_a.step, loglik_a.seed, loglik_b.step, loglik_b.seed

),

pairs as (

    select * from seed_pairs
    union all
    select * from step_pairs

),

final as (

    select
        suite,
        size,
        pair_kind,
        step_a,
        seed_a,
        step_b,
        seed_b,
        n_texts,
        kl_nats_per_text,
        mean_bytes_per_text,
        kl_nats_per_text / (ln(2) * mean_bytes_per_text) as kl_bits_per_byte

    from pairs

)

select * from final
order by suite, size, pair_kind, step_a, seed_a, step_b, seed_b

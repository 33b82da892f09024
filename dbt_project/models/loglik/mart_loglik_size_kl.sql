-- KL between two sizes of a suite, estimated from log-likelihood vectors as mart_loglik_kl does
-- (Kishino et al. 2026: KL ~ Var_i(l_a(x_i) - l_b(x_i)) / 2 over the suite's loglik texts): the
-- same seed at the same step, at two sizes (size_a's n_params below size_b's). Kishino et al.
-- set sizes, seeds and consecutive checkpoints side by side on one scale; mart_loglik_kl holds
-- the other two. Only checkpoints scored on the same text set are paired.

with loglik as materialized (

    select * from {{ ref('int_loglik_scores') }}

),

size_pairs as (

    select
        loglik_a.suite,
        loglik_a.size as size_a,
        loglik_b.size as size_b,
        loglik_a.step,
        loglik_a.seed,
        count(*) as n_texts,
        var_pop(loglik_a.logprob - loglik_b.logprob) / 2 as kl_nats_per_text,
        avg(loglik_a.n_bytes) as mean_bytes_per_text

    from loglik as loglik_a
    inner join loglik as loglik_b
        on loglik_a.suite = loglik_b.suite
        and loglik_a.step = loglik_b.step
        and loglik_a.seed = loglik_b.seed
        and loglik_a.text_id = loglik_b.text_id
        and (loglik_a.n_params, loglik_a.size) < (loglik_b.n_params, loglik_b.size)
        and loglik_a.loglik_set_hash is not distinct from loglik_b.loglik_set_hash
    group by loglik_a.suite, loglik_a.size, loglik_b.size, loglik_a.step, loglik_a.seed

)

select
    suite,
    size_a,
    size_b,
    step,
    seed,
    n_texts,
    kl_nats_per_text,
    mean_bytes_per_text,
    kl_nats_per_text / (ln(2) * mean_bytes_per_text) as kl_bits_per_byte

from size_pairs
order by suite, size_a, size_b, step, seed

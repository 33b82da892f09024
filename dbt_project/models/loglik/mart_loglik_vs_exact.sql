-- How the log-likelihood-vector estimate of the KL between two seeds (Kishino et al. 2026) compares
-- with the exact KL the lake holds (Fehlauer et al.'s pair_kl, full next-token distributions):
-- per checkpoint and unordered seed pair, both in bits per byte. The estimate is symmetric, so
-- the exact side is symmetrised too: the mean over contexts of (KL(a||b) + KL(b||a)) / 2, per
-- token, turned per byte by the mean UTF-8 length of the suite's evaluation tokens. Only pairs
-- with both estimates. A small table rebuilt whole.

with checkpoints as (

    select suite, size, step, n_params from {{ ref('stg_checkpoints') }}

),

llv as (

    select suite, size, step_a as step, seed_a, seed_b, kl_bits_per_byte
    from {{ ref('mart_loglik_kl') }}
    where pair_kind = 'seeds'

),

exact as (

    -- both directions of the pair, each a mean over the checkpoint's contexts
    select
        suite,
        size,
        step,
        least(seed_a, seed_b) as seed_a,
        greatest(seed_a, seed_b) as seed_b,
        sum(mean_kl * n_contexts) / sum(n_contexts) as kl_exact_nats_per_token

    from {{ ref('int_pair_convergence') }}
    group by suite, size, step, least(seed_a, seed_b), greatest(seed_a, seed_b)

),

eval_bytes as (

    select
        suite,
        avg(octet_length(encode(token_text))) as eval_bytes_per_token

    from {{ ref('stg_eval_tokens') }}
    group by suite

),

joined as (

    select
        llv.suite,
        llv.size,
        llv.step,
        checkpoints.n_params,
        llv.seed_a,
        llv.seed_b,
        llv.kl_bits_per_byte as kl_llv_bits_per_byte,
        exact.kl_exact_nats_per_token,
        eval_bytes.eval_bytes_per_token,
        exact.kl_exact_nats_per_token / (ln(2) * eval_bytes.eval_bytes_per_token) as kl_exact_bits_per_byte

    from llv
    inner join exact
        on llv.suite = exact.suite
        and llv.size = exact.size
        and llv.step = exact.step
        and llv.seed_a = exact.seed_a
        and llv.seed_b = exact.seed_b
    inner join checkpoints
        on llv.suite = checkpoints.suite
        and llv.size = checkpoints.size
        and llv.step = checkpoints.step
    left join eval_bytes
        on llv.suite = eval_bytes.suite

),

final as (

    select
        *,
        kl_llv_bits_per_byte / nullif(kl_exact_bits_per_byte, 0) as ratio

    from joined

)

select * from final
order by suite, n_params, step, seed_a, seed_b

-- Cosine similarity s_t of each seed's fingerprint to its own at prev_step (McEntire 2026,
-- eq. 1), under each measure of int_fingerprint_checkpoints (fixed_gap: prev_step = step - gap;
-- log_spaced: the previous checkpoint of the log-spaced schedule), and the regime that puts it
-- in (eq. 2, macros/fingerprint_regime.sql) with the thresholds applied, the suite's own where
-- dbt var regime_suites sets them. A checkpoint's fingerprint is the concatenation over probes,
-- so the cosine is sum_p dot(f_p, g_p) / sqrt(sum_p |f_p|^2 * sum_p |g_p|^2), summed over the
-- probes both checkpoints have. The same pass counts what the data tests check: probes matched
-- on both sides, and probe vectors whose lengths differ (hidden sizes that disagree). The first
-- checkpoint of a measure has nothing to compare with: NULL similarity and regime.

with checkpoints as (

    select * from {{ ref('int_fingerprint_checkpoints') }}

),

fingerprints as (

    select suite, size, step, seed, probe_id, fingerprint from {{ ref('stg_fingerprints') }}

),

probe_products as (

    select
        checkpoints.suite,
        checkpoints.size,
        checkpoints.step,
        checkpoints.seed,
        checkpoints.comparison,
        len(current_fp.fingerprint) = len(prev_fp.fingerprint) as same_length,
        case when len(current_fp.fingerprint) = len(prev_fp.fingerprint)
            then list_inner_product(current_fp.fingerprint, prev_fp.fingerprint) end as dot,
        list_inner_product(current_fp.fingerprint, current_fp.fingerprint) as sq_norm_current,
        list_inner_product(prev_fp.fingerprint, prev_fp.fingerprint) as sq_norm_prev

    from checkpoints
    inner join fingerprints as current_fp
        on checkpoints.suite = current_fp.suite
        and checkpoints.size = current_fp.size
        and checkpoints.step = current_fp.step
        and checkpoints.seed = current_fp.seed
    inner join fingerprints as prev_fp
        on checkpoints.suite = prev_fp.suite
        and checkpoints.size = prev_fp.size
        and checkpoints.prev_step = prev_fp.step
        and checkpoints.seed = prev_fp.seed
        and current_fp.probe_id = prev_fp.probe_id

),

per_checkpoint as (

    select
        suite,
        size,
        step,
        seed,
        comparison,
        count(*) as n_probes_matched,
        count(*) filter (where not same_length) as n_length_mismatch,
        sum(dot) as dot,
        sum(sq_norm_current) as sq_norm_current,
        sum(sq_norm_prev) as sq_norm_prev

    from probe_products
    group by suite, size, step, seed, comparison

),

similarity as (

    select
        checkpoints.suite,
        checkpoints.size,
        checkpoints.step,
        checkpoints.seed,
        checkpoints.comparison,
        checkpoints.gap,
        checkpoints.n_params,
        checkpoints.prev_step,
        checkpoints.n_probes,
        previous.n_probes as n_probes_prev,
        coalesce(per_checkpoint.n_probes_matched, 0) as n_probes_matched,
        coalesce(per_checkpoint.n_length_mismatch, 0) as n_length_mismatch,
        case when per_checkpoint.n_length_mismatch = 0
            then per_checkpoint.dot / sqrt(per_checkpoint.sq_norm_current * per_checkpoint.sq_norm_prev)
        end as similarity_prev

    from checkpoints
    left join per_checkpoint
        on checkpoints.suite = per_checkpoint.suite
        and checkpoints.size = per_checkpoint.size
        and checkpoints.step = per_checkpoint.step
        and checkpoints.seed = per_checkpoint.seed
        and checkpoints.comparison = per_checkpoint.comparison
    left join checkpoints as previous
        on checkpoints.suite = previous.suite
        and checkpoints.size = previous.size
        and checkpoints.prev_step = previous.step
        and checkpoints.seed = previous.seed
        and checkpoints.comparison = previous.comparison

),

final as (

    select
        *,
        {{ fingerprint_regime('similarity_prev') }} as regime,
        {{ regime_value('tau_low') }} as tau_low,
        {{ regime_value('tau_high') }} as tau_high

    from similarity

)

select * from final

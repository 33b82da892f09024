-- Cosine similarity between the fingerprints of two seeds at the same checkpoint, for every
-- unordered seed pair (seed_a < seed_b): the cross-seed similarity McEntire (2026) names and
-- does not measure. Summed over the probes both seeds have, as int_fingerprint_similarity; the
-- same pass counts probe vectors whose lengths differ.

with fingerprints as (

    select suite, size, step, seed, probe_id, fingerprint from {{ ref('stg_fingerprints') }}

),

probe_products as (

    select
        fp_a.suite,
        fp_a.size,
        fp_a.step,
        fp_a.seed as seed_a,
        fp_b.seed as seed_b,
        len(fp_a.fingerprint) = len(fp_b.fingerprint) as same_length,
        case when len(fp_a.fingerprint) = len(fp_b.fingerprint)
            then list_inner_product(fp_a.fingerprint, fp_b.fingerprint) end as dot,
        list_inner_product(fp_a.fingerprint, fp_a.fingerprint) as sq_norm_a,
        list_inner_product(fp_b.fingerprint, fp_b.fingerprint) as sq_norm_b

    from fingerprints as fp_a
    inner join fingerprints as fp_b
        on fp_a.suite = fp_b.suite
        and fp_a.size = fp_b.size
        and fp_a.step = fp_b.step
        and fp_a.probe_id = fp_b.probe_id
        and fp_a.seed < fp_b.seed

),

per_pair as (

    select
        suite,
        size,
        step,
        seed_a,
        seed_b,
        count(*) as n_probes_matched,
        count(*) filter (where not same_length) as n_length_mismatch,
        case when count(*) filter (where not same_length) = 0
            then sum(dot) / sqrt(sum(sq_norm_a) * sum(sq_norm_b))
        end as similarity

    from probe_products
    group by suite, size, step, seed_a, seed_b

)

select * from per_pair

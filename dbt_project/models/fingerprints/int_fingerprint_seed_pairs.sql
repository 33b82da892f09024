-- Similarity between the fingerprints of two seeds at the same checkpoint, for every unordered
-- seed pair (seed_a < seed_b): the cross-seed similarity McEntire (2026) names and does not
-- measure. Two measures:
-- * similarity: the cosine of the concatenated fingerprints, summed over the probes both seeds
--   have, as int_fingerprint_similarity. It compares raw hidden coordinates, and each seed lays
--   out its hidden space in its own basis, so two seeds that represent the probes alike in
--   rotated bases score near 0.
-- * cka: linear CKA (Kornblith et al. 2019) over the probes, which is invariant to rotations and
--   scalings of the hidden space: the correlation of the two seeds' double-centred
--   probe-by-probe Gram matrices, sum_ij Ka_ij Kb_ij / sqrt(sum Ka_ij^2 sum Kb_ij^2). It needs
--   every probe in both seeds; NULL otherwise.
-- The same pass counts probe vectors whose lengths differ.

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

grams as (

    -- each seed's probe-by-probe Gram matrix (dot products of its own fingerprints)
    select
        fp_i.suite,
        fp_i.size,
        fp_i.step,
        fp_i.seed,
        fp_i.probe_id as probe_i,
        fp_j.probe_id as probe_j,
        list_inner_product(fp_i.fingerprint, fp_j.fingerprint) as gram

    from fingerprints as fp_i
    inner join fingerprints as fp_j
        on fp_i.suite = fp_j.suite
        and fp_i.size = fp_j.size
        and fp_i.step = fp_j.step
        and fp_i.seed = fp_j.seed
        and len(fp_i.fingerprint) = len(fp_j.fingerprint)

),

centred_grams as (

    -- double-centred: the Gram matrix of the fingerprints centred over probes
    select
        suite,
        size,
        step,
        seed,
        probe_i,
        probe_j,
        gram
            - avg(gram) over (partition by suite, size, step, seed, probe_i)
            - avg(gram) over (partition by suite, size, step, seed, probe_j)
            + avg(gram) over (partition by suite, size, step, seed) as gram_centred,
        count(*) over (partition by suite, size, step, seed) as n_entries

    from grams

),

cka_pairs as (

    select
        gram_a.suite,
        gram_a.size,
        gram_a.step,
        gram_a.seed as seed_a,
        gram_b.seed as seed_b,
        case when count(*) = max(gram_a.n_entries) and count(*) = max(gram_b.n_entries)
            then sum(gram_a.gram_centred * gram_b.gram_centred) / sqrt(
                sum(gram_a.gram_centred * gram_a.gram_centred) * sum(gram_b.gram_centred * gram_b.gram_centred)
            )
        end as cka

    from centred_grams as gram_a
    inner join centred_grams as gram_b
        on gram_a.suite = gram_b.suite
        and gram_a.size = gram_b.size
        and gram_a.step = gram_b.step
        and gram_a.probe_i = gram_b.probe_i
        and gram_a.probe_j = gram_b.probe_j
        and gram_a.seed < gram_b.seed
    group by gram_a.suite, gram_a.size, gram_a.step, gram_a.seed, gram_b.seed

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

),

final as (

    select
        per_pair.*,
        cka_pairs.cka

    from per_pair
    left join cka_pairs
        on per_pair.suite = cka_pairs.suite
        and per_pair.size = cka_pairs.size
        and per_pair.step = cka_pairs.step
        and per_pair.seed_a = cka_pairs.seed_a
        and per_pair.seed_b = cka_pairs.seed_b

)

select * from final

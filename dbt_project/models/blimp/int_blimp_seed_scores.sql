-- BLiMP per seed and minimal pair (Warstadt et al. 2020; Fehlauer et al. 2025, §BLiMP): the
-- model restricted to the pair's two sentences gives the good one
-- p(good) = P(good) / (P(good) + P(bad)) = sigmoid(logit), logit = log P(good) - log P(bad),
-- computed from the log-probabilities (macros/two_point_kl.sql), never from P itself. The pair
-- is right when the good sentence is the more probable (a tie counts as wrong). One row per
-- (suite, size, step, seed, pair_index) of a complete partition with BLiMP scores; the
-- paradigm and field come from the suite's blimp_pairs. A table: the per-pair KLs and every
-- BLiMP mart read it.

with scores as (

    select * from {{ ref('stg_blimp_scores') }}

),

pairs as (

    select suite, pair_index, uid, field, linguistics_term from {{ ref('stg_blimp_pairs') }}

),

joined as (

    select
        scores.suite,
        scores.size,
        scores.step,
        scores.seed,
        scores.pair_index,
        pairs.uid,
        pairs.field,
        pairs.linguistics_term,
        scores.logprob_good,
        scores.logprob_bad,
        scores.logprob_good - scores.logprob_bad as logit

    from scores
    inner join pairs
        on scores.suite = pairs.suite
        and scores.pair_index = pairs.pair_index

),

final as (

    select
        suite,
        size,
        step,
        seed,
        pair_index,
        uid,
        field,
        linguistics_term,
        logprob_good,
        logprob_bad,
        logit,
        exp({{ log_sigmoid('logit') }}) as p_good,
        logprob_good > logprob_bad as correct

    from joined

)

select * from final

-- BLiMP per linguistic field and checkpoint: the mean over the field's paradigms of each
-- paradigm's E[conv], mean KL and accuracy (mart_blimp_paradigm). Each paradigm weighs the same,
-- whatever its number of pairs, as BLiMP reports fields. One row per (suite, size, step, field).

select
    suite,
    size,
    step,
    any_value(n_params) as n_params,
    field,
    count(*) as n_paradigms,
    sum(n_pairs) as n_pairs,
    avg(expected_conv) as expected_conv,
    -avg(expected_conv) as expected_kl,
    avg(accuracy) as accuracy

from {{ ref('mart_blimp_paradigm') }}
group by suite, size, step, field

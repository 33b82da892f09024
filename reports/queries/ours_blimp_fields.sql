-- BLiMP by linguistic field, every suite: expected convergence and accuracy per size, step and
-- field (as level, numbered in name order within the suite as level_order).
select suite, size, n_params, step, field as level,
       dense_rank() over (partition by suite order by field) as level_order,
       n_paradigms, expected_conv, accuracy
from mart_blimp_field
order by suite, n_params, field, step;

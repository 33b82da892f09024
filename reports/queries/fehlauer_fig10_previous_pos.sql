-- Fehlauer et al. (2025), Figure 10 (App. E), every suite: expected convergence per size and step,
-- conditioned on the Penn tag of the token before the target (fine tags, the suite's eight most
-- frequent: level_order ranks a tag by its count in the evaluation set).
select suite, size, n_params, step, level, level_order, n_contexts, expected_conv, conv_std
from mart_conditional_convergence
where condition = 'prev_pos' and level_order <= 8
order by suite, n_params, level_order, step;

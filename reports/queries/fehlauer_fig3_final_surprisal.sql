-- Fehlauer et al. (2025), Figure 3 (right), every suite: expected convergence per size, step and
-- final-surprisal bin (bits, log-spaced) of the target token, read at each size's final
-- checkpoint. A size whose final checkpoint is not extracted yet has one row with its status
-- (mart_final_steps) and no bins.
select c.suite, c.size, c.n_params, c.step, c.level, c.level_order, c.n_contexts, c.expected_conv, c.conv_std,
       f.final_step, f.status
from mart_conditional_convergence c
join mart_final_steps f using (suite, size)
where c.condition = 'final_surprisal_bin'
union all
select f.suite, f.size, s.n_params, null, null, null, null, null, null, f.final_step, f.status
from mart_final_steps f
join (select suite, size, max(n_params) as n_params from mart_expected_convergence group by suite, size) s
    using (suite, size)
where not f.final_extracted
order by suite, n_params, level_order, step;

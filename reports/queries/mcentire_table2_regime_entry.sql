-- McEntire (2026), Table 2, every suite: per size, measure (comparison) and regime, the first step
-- at which the seeds enter the regime: mean ± sample standard deviation and [min, max] as the paper
-- writes them, and the same numbers as columns.
select
    suite, size, n_params, comparison, gap, regime, n_seeds, n_seeds_entered,
    case
        when n_seeds_entered = 0 then null
        when std_first_step is null then printf('%.0f', mean_first_step)
        else printf('%.0f ± %.0f', mean_first_step, std_first_step)
    end as first_step,
    case when n_seeds_entered > 0 then printf('[%d, %d]', min_first_step, max_first_step) end as first_step_range,
    mean_first_step, std_first_step, min_first_step, max_first_step
from mart_regime_entry
order by suite, n_params, comparison, case regime when 'chaotic' then 1 when 'transition' then 2 else 3 end;

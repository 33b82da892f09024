-- Ours, every suite: the ICL score per size and step, mean and standard deviation over seeds
-- (Figure 1's ICL panel, with its spread across seeds).
select suite, size, n_params, step, icl_score, icl_score_seed_std
from mart_icl_summary
order by suite, n_params, step;

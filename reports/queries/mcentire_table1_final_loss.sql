-- McEntire (2026), Table 1, every suite: per size, each seed's cross-entropy on the evaluation
-- tokens at the size's last step (nats per token), with its mean, sample standard deviation and
-- range across seeds and the coefficient of variation in percent.
select suite, size, n_params, step, n_seeds, mean_loss, std_loss, min_loss, max_loss, cv_percent
from mart_mcentire_table1_final_loss
order by suite, n_params;

-- After Kishino et al. (2026), the model map, every suite: each checkpoint's first two principal coordinates of its
-- log-likelihood vector, with the share of variance each explains.
select suite, size, n_params, step, seed, x, y, explained_x, explained_y
from loglik_model_map
order by suite, n_params, seed, step;

-- Figure 8, every suite: the variance (and standard deviation) of convergence across contexts per size and step.
select suite, size, n_params, step, conv_variance, conv_std
from mart_expected_convergence
order by suite, n_params, step;

-- Fehlauer et al. (2025), Figure 4, every suite: per size and step, conv(s_<t) averaged over
-- contexts with its standard deviation across contexts (the figure's band), and the variance.
select suite, size, n_params, step, expected_conv, conv_std, conv_variance
from mart_expected_convergence
order by suite, n_params, step;

-- Masked-LM convergence, every suite: per size and step, expected convergence across seed pairs
-- with its band (the report draws it for masked suites).
select suite, size, n_params, step, n_seeds, n_contexts, expected_conv, band_low, band_high
from mart_expected_convergence
order by suite, n_params, step;

-- Ours, seed convergence layer by layer, every suite: per size, step and layer of the logit lens,
-- E[conv] between seeds and the seeds' KL from their own output.
select suite, size, step, layer, n_layers, relative_depth, expected_conv, pair_conv_std, kl_to_final
from mart_layer_convergence
order by suite, size, step, layer;

-- One row per suite in the warehouse: how its models predict (causal or masked, which decides
-- which analyses it has: a masked LM has no ICL score, log-likelihood vector or BLiMP score),
-- its sizes, checkpoints and seeds. The report reads it to choose each suite's figures.

select
    suite,
    -- a suite's manifests agree on it (mart_suites_one_objective)
    min(objective) as objective,
    count(distinct objective) as n_objectives,
    count(distinct size) as n_sizes,
    count(*) as n_checkpoints,
    max(n_seeds) as max_seeds,
    -- checkpoints compared without some seed that has no checkpoint there
    count(*) filter (where n_seeds_missing > 0) as n_checkpoints_missing_seeds,
    min(step) as first_step,
    max(step) as last_step

from {{ ref('stg_checkpoints') }}
group by suite

-- Every log-likelihood of complete partitions with what the KL estimates pair and divide by: the
-- model's n_params (to order sizes), the text set it was scored on (manifest loglik_set_hash;
-- only models scored on the same set are paired) and the text's UTF-8 length. Read by
-- mart_loglik_kl and mart_loglik_size_kl; a view, each mart materializes it once for its self-join.

{{ config(materialized='view') }}

with checkpoints as (

    select suite, size, step, n_params, loglik_set_hash from {{ ref('stg_checkpoints') }}

),

texts as (

    select suite, text_id, n_bytes from {{ ref('stg_loglik_texts') }}

)

select
    loglik.suite,
    loglik.size,
    checkpoints.n_params,
    loglik.step,
    loglik.seed,
    loglik.text_id,
    loglik.logprob,
    checkpoints.loglik_set_hash,
    texts.n_bytes

from {{ ref('stg_loglik') }} as loglik
inner join checkpoints
    on loglik.suite = checkpoints.suite
    and loglik.size = checkpoints.size
    and loglik.step = checkpoints.step
left join texts
    on loglik.suite = texts.suite
    and loglik.text_id = texts.text_id

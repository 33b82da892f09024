-- The design rows of the paper's per-step regression of conv(s_<t) on log frequency, the PoS of
-- s_t, the PoS of s_{t-1} and model size (Fehlauer et al. 2025). The regression itself (with
-- reference levels and standard errors) is a Python asset that reads this table.

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

context_convergence as (

    select * from {{ ref('int_context_convergence') }}

),

token_features as (

    select * from {{ ref('int_token_features') }}

),

final as (

    select
        context_convergence.suite,
        context_convergence.size,
        context_convergence.step,
        context_convergence.position,
        checkpoints.n_params,
        token_features.token_id,
        context_convergence.conv,
        token_features.frequency,
        case when token_features.frequency > 0 then ln(token_features.frequency) end as log_frequency,
        token_features.pos,
        token_features.prev_pos

    from context_convergence
    inner join checkpoints
        on context_convergence.suite = checkpoints.suite
        and context_convergence.size = checkpoints.size
        and context_convergence.step = checkpoints.step
    left join token_features
        on context_convergence.suite = token_features.suite
        and context_convergence.position = token_features.position

)

select * from final
order by suite, n_params, step, position

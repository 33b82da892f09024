-- Per (suite, size): the last complete checkpoint (where the token rankings are read) and the
-- final one, the step the size trains to (where final surprisal is read, Fehlauer et al. 2025:
-- "using its last checkpoint"). The final step is what the suite configures, as the newest
-- manifest of the size records it; a suite that does not say (a local run of unknown length)
-- has its last extracted step stand in. final_surprisal_step is NULL while the final
-- checkpoint is not extracted yet: no earlier step stands in for it.

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

per_size as (

    select
        suite,
        size,
        max(step) as last_step,
        -- the plan as the newest extraction saw it (NULL: the suite does not say)
        arg_max(final_step, created_at) as configured_final_step,
        list(step) as steps

    from checkpoints
    group by suite, size

),

final as (

    select
        suite,
        size,
        last_step,
        coalesce(configured_final_step, last_step) as final_step,
        configured_final_step is not null as final_step_configured,
        configured_final_step is null or list_contains(steps, configured_final_step) as final_extracted,
        case
            when configured_final_step is null then last_step
            when list_contains(steps, configured_final_step) then configured_final_step
        end as final_surprisal_step

    from per_size

)

select * from final

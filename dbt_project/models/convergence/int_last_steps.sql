-- Per (suite, size): the last complete checkpoint (where the token rankings are read) and the
-- final one, the step the size trains to (where final surprisal is read, Fehlauer et al. 2025:
-- "using its last checkpoint"). The final step is what the suite configures, as the newest
-- manifest of the size records it, or a later step already extracted (a run trained on past
-- its configured end); a suite that does not say (a local run of unknown length) has its last
-- extracted step stand in. final_surprisal_step is NULL while the final checkpoint is not
-- extracted yet: no earlier step stands in for it.

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

per_size as (

    select
        suite,
        size,
        max(step) as last_step,
        -- the plan as the newest extraction saw it (NULL: the suite does not say)
        arg_max(final_step, created_at) as configured_final_step

    from checkpoints
    group by suite, size

),

final as (

    select
        suite,
        size,
        last_step,
        -- the final step is the last step extracted, unless the suite names a later one
        case when configured_final_step > last_step then configured_final_step else last_step end as final_step,
        configured_final_step is not null as final_step_configured,
        coalesce(configured_final_step <= last_step, true) as final_extracted,
        case when coalesce(configured_final_step <= last_step, true) then last_step end as final_surprisal_step

    from per_size

)

select * from final

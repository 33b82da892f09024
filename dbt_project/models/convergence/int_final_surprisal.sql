-- Final surprisal of each evaluation token (Fehlauer et al. 2025): its surprisal under the last
-- checkpoint of its size, averaged over seeds, binned 2 nats wide up to 14+.

with context_surprisal as (

    select * from {{ ref('int_context_surprisal') }}

),

last_steps as (

    select * from {{ ref('int_last_steps') }}

),

at_last_step as (

    select
        context_surprisal.suite,
        context_surprisal.size,
        last_steps.last_step,
        context_surprisal.position,
        context_surprisal.mean_surprisal as final_surprisal,
        -- floored at 0: a float32 surprisal a hair below 0 belongs to the first bin
        least(greatest(cast(floor(context_surprisal.mean_surprisal / 2) as integer), 0), 7)
            as final_surprisal_bin_order

    from context_surprisal
    inner join last_steps
        on context_surprisal.suite = last_steps.suite
        and context_surprisal.size = last_steps.size
        and context_surprisal.step = last_steps.last_step

),

labelled as (

    select
        *,
        case
            when final_surprisal_bin_order = 7 then '14+'
            else cast(2 * final_surprisal_bin_order as varchar)
                || '–'
                || cast(2 * final_surprisal_bin_order + 2 as varchar)
        end as final_surprisal_bin

    from at_last_step

)

select * from labelled

-- Final surprisal of each evaluation token (Fehlauer et al. 2025): its surprisal under the final
-- checkpoint of its size (int_last_steps.final_surprisal_step; no rows for a size whose final
-- checkpoint is not extracted yet), averaged over seeds, in bits, and its bin. The bins are
-- log-spaced, powers of two in bits as the paper's ("from 1 to 8+ bits", section 5), and go
-- below 1 bit, where the tokens the paper singles out lie ("tokens with very low
-- final-surprisal show strong convergence"): <1/8, 1/8-1/4, 1/4-1/2, 1/2-1, 1-2, 2-4, 4-8, 8+.
-- The paper does not state its lowest edge; 1/8 bit is ours (docs/architecture.md).

with context_surprisal as (

    select * from {{ ref('int_context_surprisal') }}

),

last_steps as (

    select * from {{ ref('int_last_steps') }}

),

at_final_step as (

    select
        context_surprisal.suite,
        context_surprisal.size,
        last_steps.final_surprisal_step as final_step,
        context_surprisal.position,
        context_surprisal.mean_surprisal as final_surprisal,
        -- nats to bits; floored at 0: a float32 surprisal a hair below 0 belongs to the first bin
        greatest(context_surprisal.mean_surprisal, 0) / ln(2) as final_surprisal_bits

    from context_surprisal
    inner join last_steps
        on context_surprisal.suite = last_steps.suite
        and context_surprisal.size = last_steps.size
        and context_surprisal.step = last_steps.final_surprisal_step

),

binned as (

    select
        *,
        -- 0 for < 1/8 bit, then one per doubling, 7 for 8 bits and more: floor(log2(bits)) + 4
        -- clamped to 0..7 (the case keeps log2 away from 0)
        case
            when final_surprisal_bits < 0.125 then 0
            else least(cast(floor(log2(final_surprisal_bits)) as integer) + 4, 7)
        end as final_surprisal_bin_order

    from at_final_step

),

labelled as (

    select
        *,
        ['<0.125', '0.125–0.25', '0.25–0.5', '0.5–1', '1–2', '2–4', '4–8', '8+'][final_surprisal_bin_order + 1]
            as final_surprisal_bin

    from binned

)

select * from labelled

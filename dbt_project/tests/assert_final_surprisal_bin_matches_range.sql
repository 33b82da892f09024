-- Every final-surprisal bin's label names the range its final surprisal lies in: "a–b" with
-- a = 2 * bin order, b = a + 2 and a <= final_surprisal < b (a surprisal a hair below 0 from
-- float32 rounding, down to -1e-5, counts as 0), or "14+" for 14 nats and more.

with final_surprisal as (

    select * from {{ ref('int_final_surprisal') }}

),

parsed as (

    select
        *,
        try_cast(split_part(final_surprisal_bin, '–', 1) as integer) as label_low,
        try_cast(split_part(final_surprisal_bin, '–', 2) as integer) as label_high

    from final_surprisal

)

select *
from parsed
where
    case
        when final_surprisal_bin = '14+' then not (final_surprisal >= 14 and final_surprisal_bin_order = 7)
        else not coalesce(
            regexp_full_match(final_surprisal_bin, '(0|[1-9][0-9]*)–[1-9][0-9]*')
            and label_low = 2 * final_surprisal_bin_order
            and label_high = label_low + 2
            and label_high <= 14
            and greatest(final_surprisal, 0) >= label_low - 1e-5
            and final_surprisal < label_high,
            false
        )
    end

-- Every final-surprisal bin's label names the range its surprisal in bits lies in: `a–b` with
-- a = 2^(bin order - 4), b = 2a and a <= bits < b, `<0.125` for bin 0 (below 1/8 bit), `8+` for
-- bin 7 (8 bits and more); and bits is the surprisal in nats over ln 2 (floored at 0).

with final_surprisal as (

    select * from {{ ref('int_final_surprisal') }}

),

parsed as (

    select
        *,
        try_cast(split_part(final_surprisal_bin, '–', 1) as double) as label_low,
        try_cast(split_part(final_surprisal_bin, '–', 2) as double) as label_high

    from final_surprisal

)

select *
from parsed
where
    abs(final_surprisal_bits - greatest(final_surprisal, 0) / ln(2)) > 1e-12
    or case
        when final_surprisal_bin = '<0.125' then not (final_surprisal_bits < 0.125 and final_surprisal_bin_order = 0)
        when final_surprisal_bin = '8+' then not (final_surprisal_bits >= 8 and final_surprisal_bin_order = 7)
        else not coalesce(
            label_low = pow(2, final_surprisal_bin_order - 4)
            and label_high = 2 * label_low
            and final_surprisal_bits >= label_low
            and final_surprisal_bits < label_high,
            false
        )
    end

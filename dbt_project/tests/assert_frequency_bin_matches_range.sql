-- Every frequency bin's label names exactly the decade its frequency lies in (the published code
-- labelled these a decade off): a label "lo–hi" with an en dash and thousands separators, where
-- lo = 10^frequency_bin_order, hi = 10 * lo - 1 and lo <= frequency <= hi; or "0" for 0.
-- The label is parsed back here, independently of how the model builds it.

with features as (

    select suite, position, token_id, frequency, frequency_bin_order, frequency_bin
    from {{ ref('int_token_features') }}

),

parsed as (

    select
        *,
        regexp_full_match(
            frequency_bin, '[1-9][0-9]{0,2}(,[0-9]{3})*–[1-9][0-9]{0,2}(,[0-9]{3})*'
        ) as well_formed,
        try_cast(replace(split_part(frequency_bin, '–', 1), ',', '') as hugeint) as label_low,
        try_cast(replace(split_part(frequency_bin, '–', 2), ',', '') as hugeint) as label_high

    from features

)

select *
from parsed
where
    case
        when frequency_bin = '0' then not (frequency = 0 and frequency_bin_order = -1)
        else not coalesce(
            well_formed
            and label_low = cast(pow(10, frequency_bin_order) as hugeint)
            and label_high = 10 * label_low - 1
            and frequency between label_low and label_high,
            false
        )
    end

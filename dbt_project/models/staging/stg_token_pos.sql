-- Part of speech of each evaluation token (docs/architecture.md, Analysis features). The tags
-- are kept as the lake has them; int_token_features keeps only those in the penn_tags seed.

{% set token_pos_source = source('lake', 'token_pos') %}

with source as (

    {% if lake_files_exist('token_pos/suite=*/token_pos.parquet') %}
    select * from {{ token_pos_source }}
    {% else %}
    -- a lake written before token_pos: no rows, the contract's columns
    select
        cast(null as varchar) as suite,
        cast(null as varchar) as eval_set,
        cast(null as integer) as position,
        cast(null as varchar) as word,
        cast(null as varchar) as pos,
        cast(null as varchar) as prev_pos
    where false
    {% endif %}

),

renamed as (

    select
        suite,
        cast(eval_set as varchar) as eval_set,
        cast(position as integer) as position,
        cast(word as varchar) as word,
        cast(pos as varchar) as pos,
        cast(prev_pos as varchar) as prev_pos

    from source

)

select * from renamed

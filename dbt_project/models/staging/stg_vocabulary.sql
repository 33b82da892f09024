-- The text of each token id of a suite's tokenizer, to show predicted tokens (token_stats'
-- top-k ids) as text.

{% set vocabulary_source = source('lake', 'vocabulary') %}

with source as (

    {% if lake_files_exist('vocabulary/suite=*/vocabulary.parquet') %}
    select * from {{ vocabulary_source }}
    {% else %}
    -- a lake written before the vocabulary: no rows, the contract's columns
    select
        cast(null as varchar) as suite,
        cast(null as integer) as token_id,
        cast(null as varchar) as token_text
    where false
    {% endif %}

),

renamed as (

    select
        suite,
        cast(token_id as integer) as token_id,
        cast(token_text as varchar) as token_text

    from source

)

select * from renamed

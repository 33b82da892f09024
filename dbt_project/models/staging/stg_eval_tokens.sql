with source as (

    select * from {{ source('lake', 'eval_tokens') }}

),

renamed as (

    select
        suite,
        cast(eval_set as varchar) as eval_set,
        cast(position as integer) as position,
        cast(doc_id as varchar) as doc_id,
        cast(window_id as integer) as window_id,
        cast(token_id as integer) as token_id,
        cast(token_text as varchar) as token_text,
        cast(char_start as integer) as char_start,
        cast(char_end as integer) as char_end,
        cast(context_len as integer) as context_len

    from source

)

select * from renamed

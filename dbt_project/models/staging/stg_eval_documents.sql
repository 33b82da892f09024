with source as (

    select * from {{ source('lake', 'eval_documents') }}

),

renamed as (

    select
        cast(eval_set as varchar) as eval_set,
        cast(doc_id as varchar) as doc_id,
        cast(category as varchar) as category,
        cast(text as varchar) as text

    from source

)

select * from renamed

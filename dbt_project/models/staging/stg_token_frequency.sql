with source as (

    select * from {{ source('lake', 'token_frequency') }}

),

renamed as (

    select
        suite,
        cast(token_id as integer) as token_id,
        cast("count" as bigint) as token_count

    from source

)

select * from renamed

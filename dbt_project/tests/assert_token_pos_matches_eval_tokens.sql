-- token_pos describes its suite's evaluation set: where a suite has token_pos, every
-- evaluation token has exactly one row, of the same eval_set. (Rows at positions the
-- evaluation set lacks fail stg_token_pos_position_in_eval_tokens.)

with eval_tokens as (

    select suite, position, eval_set from {{ ref('stg_eval_tokens') }}

),

token_pos as (

    select suite, position, eval_set from {{ ref('stg_token_pos') }}

),

tagged_suites as (

    select distinct suite from token_pos

)

select
    eval_tokens.suite,
    eval_tokens.position,
    eval_tokens.eval_set,
    token_pos.eval_set as token_pos_eval_set

from eval_tokens
inner join tagged_suites
    on eval_tokens.suite = tagged_suites.suite
left join token_pos
    on eval_tokens.suite = token_pos.suite
    and eval_tokens.position = token_pos.position
where token_pos.eval_set is distinct from eval_tokens.eval_set

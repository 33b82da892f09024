{#
    Incremental models over checkpoint partitions.

    A partition (suite, size, step) is the unit the lake is written in, so it is the unit the
    per-partition models are rebuilt in. Each such model is configured

        materialized = 'incremental', incremental_strategy = 'replace_partitions',
        partition_inputs = [...], post_hook = "{{ record_partitions() }}"

    and builds the rows of the partitions that `partition_plan()` lists, one `union all` branch
    per partition with literal (suite, size, step) filters: DuckDB then reads only that
    partition's Parquet files (hive pruning) or row groups (zone maps), and every branch is the
    same SQL whether the build is full or incremental, so both give the same rows.

    Which partitions: every complete partition (stg_checkpoints) has an input digest, the md5 of

      - the model's code and that of every model upstream of it (a changed model rebuilds all),
      - its manifest (manifest_digest: a rerun writes a new manifest, with a new created_at),
      - with partition_inputs 'final_step': the manifest of its size's final step (final
        surprisal is read there, so extracting or re-extracting it changes every step of the
        size; a size whose final step is not extracted yet has none),
      - with partition_inputs 'token_features': a hash of the suite's int_token_features (a new
        evaluation set, token_pos, or `--vars '{frequency_corpus: train}'`).

    The table `incremental_partitions` (model, suite, size, step, input_digest, built_at) holds
    the digest each model's rows were built from; it is written in the same transaction as the
    rows (post-hook record_partitions). An incremental build rebuilds the partitions whose
    digest is new or changed, deletes the rows of those and of partitions no longer complete
    (manifest gone), and never touches the rest: its cost is that of the changed partitions.
#}

{% macro partition_state_relation() %}
    {{ return(api.Relation.create(database=target.database, schema=target.schema, identifier='incremental_partitions')) }}
{% endmacro %}


{% macro create_partition_state() %}
    {#- on-run-start: models run in parallel and must not race to create it -#}
    create table if not exists {{ partition_state_relation() }} (
        model varchar, suite varchar, size varchar, step bigint, input_digest varchar, built_at timestamptz
    )
{% endmacro %}


{% macro model_relation(name) %}
    {#- The relation of a model of this project, looked up in the graph rather than ref()'d:
        the plan reads stg_checkpoints, int_last_steps and int_token_features, which every
        partition model is already downstream of, and must add no edge to the lineage. -#}
    {{ return(graph.nodes['model.' ~ project_name ~ '.' ~ name].relation_name) }}
{% endmacro %}


{% macro lineage_code_digest(unique_id=none) %}
    {#- md5 of the raw code of the model and of every model upstream of it -#}
    {%- set start = unique_id or model.unique_id -%}
    {%- set state = namespace(seen=[], queue=[start]) -%}
    {%- for _ in range(1000) if state.queue -%}
        {%- set node_id = state.queue[0] -%}
        {%- set state.queue = state.queue[1:] -%}
        {%- if node_id not in state.seen and node_id in graph.nodes -%}
            {%- set state.seen = state.seen + [node_id] -%}
            {%- set state.queue = state.queue + (graph.nodes[node_id].depends_on.nodes | list) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set parts = [] -%}
    {%- for node_id in state.seen | sort -%}
        {%- do parts.append(node_id ~ '\n' ~ graph.nodes[node_id].raw_code) -%}
    {%- endfor -%}
    {{ return(local_md5(parts | join('\n'))) }}
{% endmacro %}


{% macro partition_plan() %}
    {#-
        What an incremental model builds now. Returns a dict:
          todo     partitions to build: dicts {suite, size, step, n_seeds, seeds, input_digest}
          removed  partitions whose rows must go: built before, no longer complete
          reset    true when every existing row must go first (no recorded state for the table)
    -#}
    {%- if not execute -%}
        {{ return({'todo': [], 'removed': [], 'reset': false}) }}
    {%- endif -%}
    {%- set inputs = config.get('partition_inputs', ['manifest']) -%}
    {%- set query -%}
        with checkpoints as (
            select suite, size, step, n_seeds, seeds, manifest_digest
            from {{ model_relation('stg_checkpoints') }}
        )
        {%- if 'final_step' in inputs %},
        last_steps as (
            select last_steps.suite, last_steps.size, checkpoints.manifest_digest as final_step_digest
            from {{ model_relation('int_last_steps') }} as last_steps
            inner join checkpoints
                on last_steps.suite = checkpoints.suite
                and last_steps.size = checkpoints.size
                and last_steps.final_surprisal_step = checkpoints.step
        )
        {%- endif %}
        {%- if 'token_features' in inputs %},
        token_features as (
            select
                suite,
                cast(sum(hash(
                    position, token_id, token_text, frequency, frequency_bin_order, frequency_bin,
                    word, pos, pos_group, word_class, prev_pos, prev_pos_group, prev_word_class
                )) as varchar) as features_digest
            from {{ model_relation('int_token_features') }}
            group by suite
        )
        {%- endif %}
        select
            checkpoints.suite,
            checkpoints.size,
            checkpoints.step,
            checkpoints.n_seeds,
            array_to_string(checkpoints.seeds, ',') as seeds,
            md5(concat_ws('|',
                '{{ lineage_code_digest() }}',
                checkpoints.manifest_digest
                {%- if 'final_step' in inputs %}, coalesce(last_steps.final_step_digest, '-'){% endif %}
                {%- if 'token_features' in inputs %}, coalesce(token_features.features_digest, '-'){% endif %}
            )) as input_digest
        from checkpoints
        {%- if 'final_step' in inputs %}
        left join last_steps
            on checkpoints.suite = last_steps.suite
            and checkpoints.size = last_steps.size
        {%- endif %}
        {%- if 'token_features' in inputs %}
        left join token_features
            on checkpoints.suite = token_features.suite
        {%- endif %}
        order by checkpoints.suite, checkpoints.size, checkpoints.step
    {%- endset -%}
    {%- set current = [] -%}
    {%- for row in run_query(query) -%}
        {%- do current.append({
            'suite': row['suite'], 'size': row['size'], 'step': row['step'] | int,
            'n_seeds': row['n_seeds'] | int,
            'seeds': (row['seeds'].split(',') | map('int') | list) if row['seeds'] else [],
            'input_digest': row['input_digest'],
        }) -%}
    {%- endfor -%}

    {%- if not is_incremental() -%}
        {{ return({'todo': current, 'removed': [], 'reset': false}) }}
    {%- endif -%}

    {%- set built = {} -%}
    {%- set state = partition_state_relation() -%}
    {%- if adapter.get_relation(database=state.database, schema=state.schema, identifier=state.identifier) is not none -%}
        {%- set rows = run_query(
            "select suite, size, step, input_digest from " ~ state
            ~ " where model = '" ~ this.identifier ~ "'") -%}
        {%- for row in rows -%}
            {%- do built.update({(row['suite'], row['size'], row['step'] | int): row['input_digest']}) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set complete = {} -%}
    {%- for p in current -%}
        {%- do complete.update({(p.suite, p.size, p.step): p.input_digest}) -%}
    {%- endfor -%}
    {%- set todo = [] -%}
    {%- for p in current if built.get((p.suite, p.size, p.step)) != p.input_digest -%}
        {%- do todo.append(p) -%}
    {%- endfor -%}
    {%- set removed = [] -%}
    {%- for key in built if key not in complete -%}
        {%- do removed.append({'suite': key[0], 'size': key[1], 'step': key[2]}) -%}
    {%- endfor -%}
    {{ return({'todo': todo, 'removed': removed, 'reset': built | length == 0}) }}
{% endmacro %}


{% macro sql_string(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}


{% macro partitions_predicate(partitions, alias=none) -%}
    {#- (suite = 'a' and size = 'b' and step = 1) or ...: DuckDB prunes hive files and zone maps on
        this form (a tuple IN list is not pushed into table scans) -#}
    {%- set prefix = alias ~ '.' if alias else '' -%}
    {%- if partitions | length == 0 -%}
        false
    {%- else -%}
        ({% for p in partitions -%}
            ({{ prefix }}suite = {{ sql_string(p.suite) }} and {{ prefix }}size = {{ sql_string(p.size) }} and {{ prefix }}step = {{ p.step | int }})
            {%- if not loop.last %} or {% endif -%}
        {%- endfor %})
    {%- endif -%}
{%- endmacro %}


{% macro partition_columns(p) -%}
    {#- the partition's keys as literal columns; NULLs for the empty branch (p = none) -#}
    {%- if p is none -%}
        cast(null as varchar) as suite, cast(null as varchar) as size, cast(null as bigint) as step
    {%- else -%}
        cast({{ sql_string(p.suite) }} as varchar) as suite,
        cast({{ sql_string(p.size) }} as varchar) as size,
        cast({{ p.step | int }} as bigint) as step
    {%- endif -%}
{%- endmacro %}


{% macro partition_filter(p, alias=none) -%}
    {%- if p is none -%}false{%- else -%}{{ partitions_predicate([p], alias) }}{%- endif -%}
{%- endmacro %}


{% macro lake_partition(table, p) %}
    {#-
        The rows of one complete partition of a lake table, from its staging view (`stg_` ~
        table) with literal (suite, size, step): DuckDB reads that partition's file only (see
        complete_partition_rows). p = none: no rows, the same columns, and no file read.
    -#}
    {%- set columns = {
        'pair_kl': [('seed_a', 'integer'), ('seed_b', 'integer'), ('position', 'integer'), ('kl', 'double')],
        'token_stats': [
            ('seed', 'integer'), ('position', 'integer'), ('surprisal', 'double'), ('entropy', 'double'),
            ('kl_uniform', 'double'), ('kl_unigram', 'double'), ('tail_mass', 'double'), ('topk_ids', 'integer[]')],
        'layer_kl': [
            ('layer', 'integer'), ('n_layers', 'integer'), ('seed_a', 'integer'), ('seed_b', 'integer'),
            ('position', 'integer'), ('kl', 'double')],
        'layer_final_kl': [
            ('layer', 'integer'), ('n_layers', 'integer'), ('seed', 'integer'), ('position', 'integer'), ('kl', 'double')],
        'trajectory_kl': [
            ('seed', 'integer'), ('from_step', 'integer'), ('position', 'integer'),
            ('kl_later_earlier', 'double'), ('kl_earlier_later', 'double')],
    }[table] -%}
    {%- set relation = ref('stg_' ~ table) -%}
    {%- if p is none -%}
    (
        select
        {%- for name, type in columns %}
            cast(null as {{ type }}) as {{ name }}{{ ',' if not loop.last }}
        {%- endfor %}
        where false
    )
    {%- else -%}
    (
        select {{ columns | map(attribute=0) | join(', ') }}
        from {{ relation }}
        where {{ partition_filter(p) }}
    )
    {%- endif -%}
{% endmacro %}


{% macro seed_index(seed_column, p) -%}
    {#- 0-based index of the seed among the partition's manifest seeds (NULL for any other): plain
        arithmetic when the seeds are consecutive integers, as they are in every suite so far -#}
    {%- set seeds = p.seeds | sort -%}
    {%- if seeds and seeds[-1] - seeds[0] + 1 == seeds | length -%}
        (case when {{ seed_column }} between {{ seeds[0] }} and {{ seeds[-1] }} then {{ seed_column }} - {{ seeds[0] }} end)
    {%- else -%}
        (case {{ seed_column }}{% for seed in seeds %} when {{ seed }} then {{ loop.index0 }}{% endfor %} end)
    {%- endif -%}
{%- endmacro %}


{% macro seed_in_manifest(seed_column, p) -%}
    {%- set seeds = p.seeds | sort -%}
    {%- if seeds and seeds[-1] - seeds[0] + 1 == seeds | length -%}
        coalesce({{ seed_column }} between {{ seeds[0] }} and {{ seeds[-1] }}, false)
    {%- else -%}
        coalesce({{ seed_column }} in ({{ seeds | join(', ') }}), false)
    {%- endif -%}
{%- endmacro %}


{% macro bit_set_count(code, n_codes, condition) -%}
    {#- Distinct values of `code` (0 .. n_codes - 1) among the rows where `condition` holds, as
        the popcount of a bit set: exact, and cheaper than count(distinct) per context. Always a
        bigint, as in the empty branch: a type that changed between builds would make
        sync_all_columns rewrite the column. -#}
    {%- if n_codes <= 63 -%}
        cast(bit_count(bit_or(cast(1 as bigint) << cast({{ code }} as bigint)) filter (where {{ condition }})) as bigint)
    {%- elif n_codes <= 126 -%}
        cast(bit_count(bit_or(cast(1 as hugeint) << cast({{ code }} as hugeint)) filter (where {{ condition }})) as bigint)
    {%- else -%}
        count(distinct {{ code }}) filter (where {{ condition }})
    {%- endif -%}
{%- endmacro %}


{% macro distinct_seed_count(p, seed_column='seed') -%}
    {#- Distinct manifest seeds among a group's rows -#}
    {%- if p is none -%}
        cast(null as bigint)
    {%- else -%}
        {{ bit_set_count(seed_index(seed_column, p), p.n_seeds, seed_in_manifest(seed_column, p)) }}
    {%- endif -%}
{%- endmacro %}


{% macro distinct_pair_count(p) -%}
    {#- Distinct ordered pairs of different manifest seeds among a group's rows -#}
    {%- if p is none -%}
        cast(null as bigint)
    {%- else -%}
        {{ bit_set_count(
            seed_index('seed_a', p) ~ ' * ' ~ p.n_seeds ~ ' + ' ~ seed_index('seed_b', p),
            p.n_seeds * p.n_seeds,
            'seed_a <> seed_b and ' ~ seed_in_manifest('seed_a', p) ~ ' and ' ~ seed_in_manifest('seed_b', p)) }}
    {%- endif -%}
{%- endmacro %}


{% macro record_partitions() %}
    {#- Post-hook of an incremental partition model, inside its transaction: the digests its rows
        were built from now are what incremental_partitions holds for it. -#}
    {%- set plan = partition_plan() -%}
    {%- set state = partition_state_relation() -%}
    {% if plan.reset or not is_incremental() -%}
    delete from {{ state }} where model = {{ sql_string(this.identifier) }};
    {%- elif plan.todo or plan.removed -%}
    delete from {{ state }} where model = {{ sql_string(this.identifier) }} and {{ partitions_predicate(plan.todo + plan.removed) }};
    {%- endif %}
    {% if plan.todo -%}
    insert into {{ state }} (model, suite, size, step, input_digest, built_at) values
    {%- for p in plan.todo %}
        ({{ sql_string(this.identifier) }}, {{ sql_string(p.suite) }}, {{ sql_string(p.size) }}, {{ p.step | int }},
         {{ sql_string(p.input_digest) }}, cast({{ sql_string(run_started_at.isoformat()) }} as timestamptz)){{ ',' if not loop.last }}
    {%- endfor %};
    {%- endif %}
{% endmacro %}


{% macro get_incremental_replace_partitions_sql(arg_dict) %}
    {#- The incremental strategy of partition models: delete the rows of the partitions rebuilt
        now and of those no longer complete (literal filters: zone maps skip the rest of the
        table), then insert the new rows. -#}
    {%- set plan = partition_plan() -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- if plan.reset -%}
    delete from {{ target }};
    {%- elif plan.todo or plan.removed -%}
    delete from {{ target }} where {{ partitions_predicate(plan.todo + plan.removed) }};
    {%- endif %}
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ arg_dict['temp_relation'] }}
{% endmacro %}


{% macro recorded_partitions(relation) %}
    {#- Every partition incremental_partitions records for `relation`; none without that table -#}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set state = partition_state_relation() -%}
    {%- if adapter.get_relation(database=state.database, schema=state.schema, identifier=state.identifier) is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set partitions = [] -%}
    {%- for row in run_query("select suite, size, step from " ~ state ~ " where model = " ~ sql_string(relation.identifier)) -%}
        {%- do partitions.append({'suite': row['suite'], 'size': row['size'], 'step': row['step'] | int}) -%}
    {%- endfor -%}
    {{ return(partitions) }}
{% endmacro %}


{% macro partitions_built_now(relation) %}
    {#- The partitions of `relation` (an incremental partition model) this dbt build or run has
        built, from incremental_partitions; none (meaning all) for any other command. -#}
    {%- if not execute or flags.WHICH not in ('build', 'run') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set state = partition_state_relation() -%}
    {%- if adapter.get_relation(database=state.database, schema=state.schema, identifier=state.identifier) is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set rows = run_query(
        "select suite, size, step from " ~ state ~ " where model = " ~ sql_string(relation.identifier)
        ~ " and built_at = cast(" ~ sql_string(run_started_at.isoformat()) ~ " as timestamptz)") -%}
    {%- set partitions = [] -%}
    {%- for row in rows -%}
        {%- do partitions.append({'suite': row['suite'], 'size': row['size'], 'step': row['step'] | int}) -%}
    {%- endfor -%}
    {{ return(partitions) }}
{% endmacro %}

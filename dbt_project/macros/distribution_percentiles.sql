{#
    The percentiles of the distribution marts (models/distribution/), as llama.cpp's
    KL-divergence mode prints them (tools/perplexity/perplexity.cpp, kl_divergence()): a list of
    (column suffix, fraction). Read by int_pair_distribution, which names its columns after them
    (kl_p0_1, ..., delta_p_p99_9), and by the test that they never decrease.
#}

{% macro kl_percentiles() %}
    {#- the KL's, 0.1 % ... 99.9 % (its maximum is kl_max; llama.cpp's minimum, near 0, is left out) -#}
    {{ return([
        ('p0_1', 0.001), ('p1', 0.01), ('p5', 0.05), ('p10', 0.1), ('p50', 0.5),
        ('p90', 0.9), ('p95', 0.95), ('p99', 0.99), ('p99_9', 0.999)]) }}
{% endmacro %}


{% macro delta_p_percentiles() %}
    {#- the true token's probability change's: both tails of a signed change, and its quartiles
        (between delta_p_min and delta_p_max) -#}
    {{ return([
        ('p0_1', 0.001), ('p1', 0.01), ('p5', 0.05), ('p10', 0.1), ('p25', 0.25), ('p50', 0.5),
        ('p75', 0.75), ('p90', 0.9), ('p95', 0.95), ('p99', 0.99), ('p99_9', 0.999)]) }}
{% endmacro %}

{% autoescape off %}# Made by the Options Portal; values are shell-quoted.
export SPARK_CONF_DIR={{ spark_conf_dir }}
{% if hadoop_conf_dir %}export HADOOP_CONF_DIR={{ hadoop_conf_dir }}
{% endif %}{% endautoescape %}

{% autoescape off %}# Made by the Options Portal; values are shell-quoted.
export HADOOP_CONF_DIR={{ hadoop_conf_dir }}
export HADOOP_USER_NAME={{ hadoop_user_name }}
{% endautoescape %}

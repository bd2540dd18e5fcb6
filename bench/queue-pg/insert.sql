-- pgbench script for bench/queue-pg/run.sh: one single-row INSERT per transaction.
INSERT INTO qpg_insert (payload) VALUES ('{"i":1}');

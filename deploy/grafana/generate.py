#!/usr/bin/env python3
"""Writes pgvigil.json (the Grafana dashboard) next to this file: edit here, run, commit
both. tests/deploy_files.rs checks every metric the dashboard uses against a live scrape."""
import os
os.chdir(os.path.dirname(os.path.abspath(__file__)))
import json
DS={"type":"prometheus","uid":"${datasource}"}
panels=[]
state={"y":0}
def panel(title, exprs, kind="timeseries", unit="short", desc=""):
    pid=len(panels)+1
    x=0 if pid%2==1 else 12
    p={"id":pid,"type":kind,"title":title,"description":desc,"datasource":DS,
       "gridPos":{"h":8,"w":12,"x":x,"y":state["y"]},
       "fieldConfig":{"defaults":{"unit":unit},"overrides":[]},
       "options":{},
       "targets":[{"refId":chr(65+i),"datasource":DS,"expr":e,"legendFormat":l} for i,(e,l) in enumerate(exprs)]}
    panels.append(p)
    if x==12: state["y"]+=8
def sel(extra=""):
    inner='instance=~"$instance"' + ("," + extra if extra else "")
    return "{"+inner+"}"
S=sel(); R="[$__rate_interval]"
NOISE_F=sel('noise="false"'); NOISE_T=sel('noise="true"')
REFUSED=sel('result=~"auth_failure|blocked|timeout|protocol_error|too_many|startup_full|addr_limit|first_byte_timeout|proxy_untrusted"')
panel("Client sessions",[("sum by (instance) (pgvigil_client_connections"+S+")","{{instance}}")],desc="Client connections open now")
panel("Connections by outcome",[("sum by (result) (rate(pgvigil_connections_total"+S+R+"))","{{result}}")],unit="ops")
panel("Statements by class and user kind",[("sum by (class, user_kind) (rate(pgvigil_statements_total"+NOISE_F+R+"))","{{class}} {{user_kind}}")],unit="ops",desc="Statements that are not catalog noise")
panel("Noise share",[("sum(rate(pgvigil_statements_total"+NOISE_T+R+")) / clamp_min(sum(rate(pgvigil_statements_total"+S+R+")), 1e-9)","noise")],unit="percentunit",desc="Share of statements that are tools' catalog introspection")
panel("Failed logins by reason",[("sum by (result) (rate(pgvigil_connections_total"+REFUSED+R+"))","{{result}}"),("sum(rate(pgvigil_auth_failures_total"+S+R+"))","authentication failed")],unit="ops",desc="Refused connections by reason; authentication failed counts wrong passwords and the server's refusals")
panel("Denied statements by rule",[("sum by (denied_by) (rate(pgvigil_statements_denied_total"+S+R+"))","{{denied_by}}")],unit="ops",desc="Statements refused by deny rules, read-only policies or on_write_error = refuse")
panel("Findings by rule and severity",[("sum by (rule_id, severity) (increase(pgvigil_findings_total"+S+"[$__range]))","{{rule_id}} ({{severity}})")],kind="bargauge",desc="Findings in the selected time range")
panel("Statement latency p50 / p99 by class",[("histogram_quantile(0.5, sum by (le, class) (rate(pgvigil_statement_duration_seconds_bucket"+S+R+")))","p50 {{class}}"),("histogram_quantile(0.99, sum by (le, class) (rate(pgvigil_statement_duration_seconds_bucket"+S+R+")))","p99 {{class}}")],unit="s")
panel("Upstream connect and login latency",[("histogram_quantile(0.5, sum by (le) (rate(pgvigil_upstream_connect_seconds_bucket"+S+R+")))","connect p50"),("histogram_quantile(0.99, sum by (le) (rate(pgvigil_upstream_connect_seconds_bucket"+S+R+")))","connect p99"),("histogram_quantile(0.99, sum by (le, result) (rate(pgvigil_auth_seconds_bucket"+S+R+")))","login p99 {{result}}")],unit="s")
panel("Audit queue depth",[("max by (instance) (pgvigil_audit_queue_depth"+S+")","{{instance}}")],desc="Events waiting for the audit writer")
panel("Audit events by fate",[("sum by (result) (rate(pgvigil_audit_events_total"+S+R+"))","{{result}}"),("sum(rate(pgvigil_audit_write_errors_total"+S+R+"))","write errors")],unit="ops")
panel("Outbox depth by channel",[("sum by (channel) (pgvigil_outbox_depth"+S+")","{{channel}}")],desc="Findings waiting for delivery")
panel("Alert deliveries",[("sum by (channel, status) (rate(pgvigil_alerts_total"+S+R+"))","{{channel}} {{status}}")],unit="ops")
panel("Upstream reachable",[("min by (instance) (pgvigil_upstream_up"+S+")","{{instance}}")],kind="stat")
panel("Replicas: Redis link",[("min by (instance) (pgvigil_cluster_redis_up"+S+")","up {{instance}}"),("sum by (instance) (rate(pgvigil_cluster_findings_deduplicated_total"+S+R+"))","deduplicated {{instance}}")],desc="[cluster] only: 1 while the shared state in Redis is reachable")
panel("Bytes relayed",[("sum by (direction) (rate(pgvigil_bytes_total"+S+R+"))","{{direction}}")],unit="Bps")
dash={
 "uid":"pgvigil","title":"pgvigil","tags":["pgvigil","postgresql","audit"],
 "timezone":"utc","schemaVersion":39,"version":1,"editable":True,"refresh":"30s",
 "time":{"from":"now-6h","to":"now"},
 "templating":{"list":[
   {"name":"datasource","type":"datasource","query":"prometheus","label":"Data source","current":{"text":"Prometheus","value":"prometheus"}},
   {"name":"instance","type":"query","datasource":DS,"query":{"query":"label_values(pgvigil_client_connections, instance)","refId":"instance"},"definition":"label_values(pgvigil_client_connections, instance)","includeAll":True,"multi":True,"allValue":".*","label":"Instance","refresh":2,"current":{}}
 ]},
 "annotations":{"list":[]},
 "panels":panels}
with open('pgvigil.json','w') as f:
    json.dump(dash,f,indent=2); f.write('\n')

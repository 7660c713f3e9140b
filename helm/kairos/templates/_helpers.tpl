{{/*
Helpers of the kairos chart. Every name is prefixed with the chart name.
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "kairos.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full resource name: release-chart, or the release name when it already holds the chart name.
Truncated to 52 characters: StatefulSet pods get a controller-revision-hash label of the
form <name>-<10 characters>, which must fit in 63.
*/}}
{{- define "kairos.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* chart label value: name-version. */}}
{{- define "kairos.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the worker pods (never change them on upgrade). */}}
{{- define "kairos.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kairos.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "kairos.labels" -}}
helm.sh/chart: {{ include "kairos.chart" . }}
{{ include "kairos.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kairos
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Annotations of a resource (commonAnnotations + extra), as YAML. Call with (dict "extra" map "context" $). */}}
{{- define "kairos.annotations" -}}
{{- $all := merge (dict) (.extra | default dict) (.context.Values.commonAnnotations | default dict) -}}
{{- if $all -}}
{{- toYaml $all -}}
{{- end -}}
{{- end -}}

{{/* Name of the headless Service: per-pod DNS names for key routing between workers. */}}
{{- define "kairos.headlessServiceName" -}}
{{- printf "%s-headless" (include "kairos.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* ServiceAccount the workers run as. */}}
{{- define "kairos.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kairos.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image reference: registry/repository:tag or @digest. */}}
{{- define "kairos.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}
{{- end -}}

{{/* Table store URL: rocksdb:// on the per-pod volume when persistence is on. */}}
{{- define "kairos.store" -}}
{{- if .Values.persistence.enabled -}}rocksdb://{{- else -}}memory://{{- end -}}
{{- end -}}

{{/* Whether the Kafka connection uses SASL / TLS. */}}
{{- define "kairos.kafka.sasl" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol -}}true{{- end -}}
{{- end -}}
{{- define "kairos.kafka.tls" -}}
{{- if or (eq .Values.kafka.securityProtocol "SSL") (eq .Values.kafka.securityProtocol "SASL_SSL") -}}true{{- end -}}
{{- end -}}

{{/* Secret holding the Kafka credentials (the chart's, or an existing one). */}}
{{- define "kairos.kafka.saslSecretName" -}}
{{- .Values.kafka.sasl.existingSecret | default (printf "%s-kafka" (include "kairos.fullname" .)) -}}
{{- end -}}
{{- define "kairos.kafka.caSecretName" -}}
{{- .Values.kafka.tls.existingSecret | default (printf "%s-kafka" (include "kairos.fullname" .)) -}}
{{- end -}}
{{- define "kairos.kafka.caConfigured" -}}
{{- if and (include "kairos.kafka.tls" .) (or .Values.kafka.tls.existingSecret .Values.kafka.tls.caCert) -}}true{{- end -}}
{{- end -}}

{{/* Whether the chart creates its own Kafka Secret. */}}
{{- define "kairos.kafka.createSecret" -}}
{{- if or (and (include "kairos.kafka.sasl" .) (not .Values.kafka.sasl.existingSecret)) (and (include "kairos.kafka.tls" .) .Values.kafka.tls.caCert (not .Values.kafka.tls.existingSecret)) -}}true{{- end -}}
{{- end -}}

{{/* Secret holding the HTTP API tokens (the chart's, or an existing one). */}}
{{- define "kairos.auth.secretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "kairos.fullname" .)) -}}
{{- end -}}
{{- define "kairos.auth.createSecret" -}}
{{- if and (not .Values.auth.existingSecret) (or .Values.auth.adminToken .Values.auth.readToken) -}}true{{- end -}}
{{- end -}}

{{/* ConfigMap of rule files, when there are rules to apply at start. */}}
{{- define "kairos.rules.configMapName" -}}
{{- .Values.rules.existingConfigMap | default (printf "%s-rules" (include "kairos.fullname" .)) -}}
{{- end -}}
{{- define "kairos.rules.enabled" -}}
{{- if or .Values.rules.existingConfigMap .Values.rules.files -}}true{{- end -}}
{{- end -}}

{{/* Refuse value combinations that cannot work, with the fix in the message. */}}
{{- define "kairos.validateValues" -}}
{{- if and (include "kairos.kafka.sasl" .) (not .Values.kafka.sasl.existingSecret) (or (not .Values.kafka.sasl.username) (not .Values.kafka.sasl.password)) -}}
{{- fail (printf "kafka.securityProtocol=%s needs credentials: set kafka.sasl.username and kafka.sasl.password, or kafka.sasl.existingSecret" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if and .Values.rules.existingConfigMap .Values.rules.files -}}
{{- fail "set either rules.files or rules.existingConfigMap, not both" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail (printf "autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d)" (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (not .Values.autoscaling.targetCPU) (not .Values.autoscaling.targetMemory) -}}
{{- fail "autoscaling.enabled needs a metric: set autoscaling.targetCPU and/or autoscaling.targetMemory" -}}
{{- end -}}
{{- if ge (float64 .Values.kairos.heartbeatInterval) (float64 .Values.kairos.sessionTimeout) -}}
{{- fail (printf "kairos.heartbeatInterval (%v) must be below kairos.sessionTimeout (%v); a third of it is usual" .Values.kairos.heartbeatInterval .Values.kairos.sessionTimeout) -}}
{{- end -}}
{{- end -}}

{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "tokengate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless the release name already holds the chart name. */}}
{{- define "tokengate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tokengate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades. */}}
{{- define "tokengate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tokengate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of the helm test pod: not the selector labels, so the Service never routes to it. */}}
{{- define "tokengate.testLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end }}

{{/* Common labels. */}}
{{- define "tokengate.labels" -}}
helm.sh/chart: {{ include "tokengate.chart" . }}
{{ include "tokengate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tokengate
{{- end }}

{{- define "tokengate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tokengate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tokengate.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The admin Service URL: the default iss of exchanged tokens, under which backends discover the keys. */}}
{{- define "tokengate.adminURL" -}}
{{- printf "http://%s.%s.svc:%d" (include "tokengate.fullname" .) .Release.Namespace (int .Values.service.ports.admin) }}
{{- end }}

{{/* Where the configuration file is mounted. */}}
{{- define "tokengate.configDir" -}}/etc/tokengate/config{{- end }}
{{- define "tokengate.configFile" -}}tokengate.yaml{{- end }}

{{/* Name of the generated signing key file. */}}
{{- define "tokengate.generatedKey" -}}signing.pem{{- end }}

{{/*
The configuration file: values.config verbatim, with the listen addresses
taken from .Values.ports and, in local mode, defaults for the issuer and the
signing keys that match what the chart mounts.
*/}}
{{- define "tokengate.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- $server := get $cfg "server" | default dict }}
{{- if hasKey $server "listen" }}
{{- fail "config.server.listen is set by the chart from ports.edge: remove it and set ports.edge instead" }}
{{- end }}
{{- if hasKey $server "admin_listen" }}
{{- fail "config.server.admin_listen is set by the chart from ports.admin: remove it and set ports.admin instead" }}
{{- end }}
{{- $_ := set $server "listen" (printf ":%d" (int .Values.ports.edge)) }}
{{- $_ = set $server "admin_listen" (printf ":%d" (int .Values.ports.admin)) }}
{{- $_ = set $cfg "server" $server }}
{{- $exchange := get $cfg "exchange" | default dict }}
{{- if eq (get $exchange "mode" | default "local") "local" }}
{{- $local := get $exchange "local" | default dict }}
{{- if not (get $local "issuer") }}
{{- $_ = set $local "issuer" (include "tokengate.adminURL" .) }}
{{- end }}
{{- if not (get $local "signing_keys") }}
{{- if not .Values.signingKeys.generate }}
{{- fail "config.exchange.local.signing_keys is empty and signingKeys.generate is false: list your keys (mounted under signingKeys.mountPath) or set signingKeys.generate" }}
{{- end }}
{{- $_ = set $local "signing_keys" (list (dict "file" (printf "%s/%s" .Values.signingKeys.mountPath (include "tokengate.generatedKey" .)) "alg" "ES256")) }}
{{- end }}
{{- $_ = set $exchange "local" $local }}
{{- end }}
{{- $_ = set $cfg "exchange" $exchange }}
{{- toYaml $cfg }}
{{- end }}

{{/* PromQL label matchers for this release's series. */}}
{{- define "tokengate.promSelector" -}}
{{- default (printf "job=%q,namespace=%q" (include "tokengate.fullname" .) .Release.Namespace) .Values.prometheusRule.selector }}
{{- end }}

{{/* Whether the chart renders a Secret of signing keys. */}}
{{- define "tokengate.keysSecret" -}}
{{- if or .Values.signingKeys.generate .Values.signingKeys.values }}true{{ end }}
{{- end }}

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
{{- $authz := get $cfg "authz" | default dict }}
{{- if or (hasKey $authz "listen") (hasKey $authz "grpc_listen") }}
{{- fail "config.authz.listen and config.authz.grpc_listen are set by the chart: remove them and set authz.http.enabled / authz.grpc.enabled and their ports instead" }}
{{- end }}
{{- if .Values.authz.http.enabled }}
{{- $_ = set $authz "listen" (printf ":%d" (int .Values.authz.http.port)) }}
{{- end }}
{{- if .Values.authz.grpc.enabled }}
{{- $_ = set $authz "grpc_listen" (printf ":%d" (int .Values.authz.grpc.port)) }}
{{- end }}
{{- if $authz }}
{{- $_ = set $cfg "authz" $authz }}
{{- end }}
{{- $exchange := get $cfg "exchange" | default dict }}
{{- if eq (get $exchange "mode" | default "local") "local" }}
{{- $local := get $exchange "local" | default dict }}
{{- if not (get $local "issuer") }}
{{- $_ = set $local "issuer" (include "tokengate.adminURL" .) }}
{{- end }}
{{- if not (get $local "signing_keys") }}
{{- if not (or .Values.signingKeys.generate .Values.signingKeys.certManager.enabled) }}
{{- fail "config.exchange.local.signing_keys is empty and neither signingKeys.generate nor signingKeys.certManager.enabled is set: list your keys (mounted under signingKeys.mountPath) or turn one on" }}
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

{{/* Whether the chart renders a Secret of signing keys (signingKeys.values). */}}
{{- define "tokengate.keysSecret" -}}
{{- if .Values.signingKeys.values }}true{{ end }}
{{- end }}

{{/* The Secret the key generator Job creates once (never rendered by Helm). */}}
{{- define "tokengate.generatedKeySecret" -}}
{{- printf "%s-signing-key" (include "tokengate.fullname" .) }}
{{- end }}

{{/* The Secret cert-manager writes the signing key to. */}}
{{- define "tokengate.certKeySecret" -}}
{{- printf "%s-signing-cert" (include "tokengate.fullname" .) }}
{{- end }}

{{/* The Secret an older chart version kept its generated key in, copied once by the generator. */}}
{{- define "tokengate.legacyKeySecret" -}}
{{- $c := .Values.signingKeys.generator.copyFrom }}
{{- if eq $c "" }}{{ printf "%s-signing-keys" (include "tokengate.fullname" .) }}{{ else if ne $c "-" }}{{ $c }}{{ end }}
{{- end }}

{{/*
The sources of the signing-keys volume, as a YAML list of projected volume
sources: the generated key, cert-manager's key (tls.key as signing.pem), the
chart's values Secret, and existingSecret.
*/}}
{{- define "tokengate.keysSources" -}}
{{- $fullname := include "tokengate.fullname" . }}
{{- $k := .Values.signingKeys }}
{{- if and $k.generate $k.certManager.enabled }}
{{- fail "signingKeys.generate and signingKeys.certManager.enabled are both set: pick one source for signing.pem" }}
{{- end }}
{{- $sources := list }}
{{- if $k.generate }}
{{- $sources = append $sources (dict "secret" (dict "name" (include "tokengate.generatedKeySecret" .))) }}
{{- end }}
{{- if $k.certManager.enabled }}
{{- $sources = append $sources (dict "secret" (dict "name" (include "tokengate.certKeySecret" .) "items" (list (dict "key" "tls.key" "path" (include "tokengate.generatedKey" .))))) }}
{{- end }}
{{- if include "tokengate.keysSecret" . }}
{{- $sources = append $sources (dict "secret" (dict "name" (printf "%s-signing-keys" $fullname))) }}
{{- end }}
{{- with $k.existingSecret }}
{{- $sources = append $sources (dict "secret" (dict "name" .)) }}
{{- end }}
{{- if $sources }}{{ toYaml $sources }}{{ end }}
{{- end }}

{{/* The pod's environment (env and envFrom), shared by the check init container and tokengate. */}}
{{- define "tokengate.env" -}}
{{- $fullname := include "tokengate.fullname" . }}
{{- with .Values.extraEnv }}
env:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if or .Values.secretEnv.values .Values.secretEnv.existingSecret .Values.extraEnvFrom }}
envFrom:
  {{- if .Values.secretEnv.values }}
  - secretRef:
      name: {{ $fullname }}-env
  {{- end }}
  {{- with .Values.secretEnv.existingSecret }}
  - secretRef:
      name: {{ . }}
  {{- end }}
  {{- with .Values.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The mounts of the configuration and secrets, shared by the check init container and tokengate. */}}
{{- define "tokengate.volumeMounts" -}}
{{- /* Folders, not subPath: the kubelet then swaps updated contents in and tokengate reloads them. */ -}}
- name: config
  mountPath: {{ include "tokengate.configDir" . }}
  readOnly: true
{{- if include "tokengate.keysSources" . }}
- name: signing-keys
  mountPath: {{ .Values.signingKeys.mountPath }}
  readOnly: true
{{- end }}
{{- if or .Values.secretFiles.values .Values.secretFiles.existingSecret }}
- name: secret-files
  mountPath: {{ .Values.secretFiles.mountPath }}
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of the key generator's hook resources: not the selector labels, so neither the Service nor the NetworkPolicy selects its pod. */}}
{{- define "tokengate.generatorLabels" -}}
helm.sh/chart: {{ include "tokengate.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: keys-generator
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tokengate
{{- end }}

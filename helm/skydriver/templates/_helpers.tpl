{{/* Chart name. */}}
{{- define "skydriver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name (at most 40 chars, so suffixed names stay valid DNS labels). */}}
{{- define "skydriver.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "skydriver.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels; pass (dict "ctx" $ "component" "api"). */}}
{{- define "skydriver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "skydriver.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Common labels; pass (dict "ctx" $ "component" "api"). */}}
{{- define "skydriver.labels" -}}
helm.sh/chart: {{ include "skydriver.chart" .ctx }}
{{ include "skydriver.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: skydriver
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{/* The image; image.tag may be "1.2.3" or "1.2.3@sha256:...". */}}
{{- define "skydriver.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "skydriver.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "skydriver.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "skydriver.scanServiceAccountName" -}}
{{- if .Values.scans.serviceAccount.create }}
{{- default (printf "%s-scan" (include "skydriver.fullname" .)) .Values.scans.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.scans.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the service URIs and the admin token. */}}
{{- define "skydriver.secretName" -}}
{{- default (include "skydriver.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "skydriver.rabbitmq.fullname" -}}
{{- printf "%s-rabbitmq" (include "skydriver.fullname" .) }}
{{- end }}

{{- define "skydriver.mongodb.fullname" -}}
{{- printf "%s-mongodb" (include "skydriver.fullname" .) }}
{{- end }}

{{/* URL scan pods use to reach the API. */}}
{{- define "skydriver.apiUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "skydriver.fullname" .) .Release.Namespace .Values.service.port }}
{{- end }}

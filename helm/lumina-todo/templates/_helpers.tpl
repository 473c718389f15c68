{{/* Labels of the chart's own objects (namespace-wide NetworkPolicies). */}}
{{- define "lumina-todo.labels" -}}
app.kubernetes.io/part-of: lumina-todo
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/*
Pod selector of one service of this release; matches the subcharts'
selectorLabels. Called with (list $ "backend").
*/}}
{{- define "lumina-todo.podSelector" -}}
{{- $root := index . 0 -}}
matchLabels:
  app.kubernetes.io/name: {{ index . 1 }}
  app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- end -}}

{{/* The `helm test` pods of this release (see each subchart's templates/tests). */}}
{{- define "lumina-todo.testPodSelector" -}}
matchLabels:
  app.kubernetes.io/name: lumina-health-test
  app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

export { KubeApiDouble, matchesLabels, mergePatch } from './server.js';
export type { FaultRule, KubeApiDoubleOptions, KubeObject, RecordedRequest, Verb, WatchEvent } from './server.js';
export { apiVersionOf, DEFAULT_RESOURCES, EVENTS_RESOURCE, withoutResource } from './registry.js';
export type { ResourceType } from './registry.js';

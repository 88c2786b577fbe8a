export * from './netns.js';
export * from './sysctl.js';

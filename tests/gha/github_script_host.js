// Runs the `script` of an actions/github-script@v7 step against the emulator's in-memory
// GitHub (tests/gha/fake_github.py), mirroring the real action (github.com/actions/github-script,
// src/main.ts at v7.1.0):
//  - the script is the body of `async function(require, __original_require__, github, octokit,
//    context, core, exec, glob, io)`; node 20's global `fetch` is there as on the runner;
//  - inputs come from INPUT_* variables and the context from GITHUB_* variables, as
//    @actions/core and @actions/github read them; outputs go to $GITHUB_OUTPUT;
//  - `result` is JSON.stringify(returned) for result-encoding json, String(returned) for string;
//  - an uncaught error is printed and becomes core.setFailed(`Unhandled error: ${err}`);
//    core.setFailed sets the exit code to 1 and the script keeps running.
// `github` is a small octokit: the REST methods the workflows use, octokit's calling
// convention ({status, headers, data}; errors with `status`, like @octokit/request-error),
// `paginate` following `link: rel="next"` headers, and GitHub's own checks (404 for unknown
// issues and comments, 422 for a body over 65,536 characters, 403 when the job's
// GITHUB_TOKEN lacks the write permission). No npm dependencies: node's standard library only.
//
// Usage: node github_script_host.js CONTROL.json, where CONTROL holds {state, permissions, artifacts}:
// the state file to read and write back, the token's permissions (null: not the job token,
// so not enforced), and the artifacts of this run for listWorkflowRunArtifacts.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const childProcess = require('child_process');

const control = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const state = JSON.parse(fs.readFileSync(control.state, 'utf8'));
// Written back however the script ends (return, setFailed, throw, forgotten await).
process.on('exit', () => fs.writeFileSync(control.state, JSON.stringify(state)));

const MAX_BODY = 65536;
const BOT = {login: 'github-actions[bot]', id: 41898282, type: 'Bot'};
const API = 'https://api.github.com';

// ── @actions/core (the parts scripts use) ──

function toCommandValue(input) {
  if (input === null || input === undefined) return '';
  return typeof input === 'string' || input instanceof String ? String(input) : JSON.stringify(input);
}
function escapeData(s) {
  return toCommandValue(s).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}
function escapeProperty(s) {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}
function issueCommand(command, properties, message) {
  const props = Object.entries(properties || {}).filter(([, v]) => v).map(([k, v]) => `${k}=${escapeProperty(v)}`);
  process.stdout.write(`::${command}${props.length ? ' ' + props.join(',') : ''}::${escapeData(message)}${os.EOL}`);
}
function issueFileCommand(command, message) {
  const file = process.env[`GITHUB_${command}`];
  if (!file) throw new Error(`Unable to find environment variable for file command ${command}`);
  fs.appendFileSync(file, `${toCommandValue(message)}${os.EOL}`, 'utf8');
}
function keyValue(key, value) {
  const delimiter = `ghadelimiter_${crypto.randomUUID()}`;
  return `${key}<<${delimiter}${os.EOL}${toCommandValue(value)}${os.EOL}${delimiter}`;
}
function annotation(properties) {
  if (!properties || !Object.keys(properties).length) return {};
  return {title: properties.title, file: properties.file, line: properties.startLine, endLine: properties.endLine,
          col: properties.startColumn, endColumn: properties.endColumn};
}
function getInput(name, options) {
  const val = process.env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] || '';
  if (options && options.required && !val) throw new Error(`Input required and not supplied: ${name}`);
  return options && options.trimWhitespace === false ? val : val.trim();
}
class Summary {
  constructor() { this._buffer = ''; }
  addRaw(text, addEOL = false) { this._buffer += text; return addEOL ? this.addEOL() : this; }
  addEOL() { return this.addRaw(os.EOL); }
  addHeading(text, level = 1) { const l = Math.min(Math.max(Number(level) || 1, 1), 6); return this.addRaw(`<h${l}>${text}</h${l}>`, true); }
  addCodeBlock(code, lang) { return this.addRaw(`<pre${lang ? ` lang="${lang}"` : ''}><code>${code}</code></pre>`, true); }
  addList(items, ordered = false) { const t = ordered ? 'ol' : 'ul'; return this.addRaw(`<${t}>${items.map(i => `<li>${i}</li>`).join('')}</${t}>`, true); }
  addTable(rows) {
    const cell = c => typeof c === 'string' ? `<td>${c}</td>` : `<${c.header ? 'th' : 'td'}>${c.data}</${c.header ? 'th' : 'td'}>`;
    return this.addRaw(`<table>${rows.map(r => `<tr>${r.map(cell).join('')}</tr>`).join('')}</table>`, true);
  }
  addDetails(label, content) { return this.addRaw(`<details><summary>${label}</summary>${content}</details>`, true); }
  addQuote(text) { return this.addRaw(`<blockquote>${text}</blockquote>`, true); }
  addLink(text, href) { return this.addRaw(`<a href="${href}">${text}</a>`, true); }
  addBreak() { return this.addRaw('<br>', true); }
  addSeparator() { return this.addRaw('<hr>', true); }
  stringify() { return this._buffer; }
  isEmptyBuffer() { return this._buffer.length === 0; }
  emptyBuffer() { this._buffer = ''; return this; }
  async write(options = {}) {
    const file = process.env.GITHUB_STEP_SUMMARY;
    if (!file) throw new Error('Unable to find environment variable for $GITHUB_STEP_SUMMARY.');
    (options.overwrite ? fs.writeFileSync : fs.appendFileSync)(file, this._buffer, 'utf8');
    return this.emptyBuffer();
  }
  async clear() { return this.emptyBuffer().write({overwrite: true}); }
}
const core = {
  ExitCode: {Success: 0, Failure: 1},
  getInput,
  getMultilineInput: (name, options) => getInput(name, options).split('\n').filter(x => x !== '')
    .map(x => (options && options.trimWhitespace === false ? x : x.trim())),
  getBooleanInput(name, options) {
    const val = getInput(name, options);
    if (['true', 'True', 'TRUE'].includes(val)) return true;
    if (['false', 'False', 'FALSE'].includes(val)) return false;
    throw new TypeError(`Input does not meet YAML 1.2 "Core Schema" specification: ${name}\n` +
      'Support boolean input list: `true | True | TRUE | false | False | FALSE`');
  },
  setOutput: (name, value) => issueFileCommand('OUTPUT', keyValue(name, value)),
  exportVariable(name, value) { process.env[name] = toCommandValue(value); issueFileCommand('ENV', keyValue(name, value)); },
  addPath(p) { issueFileCommand('PATH', p); process.env.PATH = `${p}${path.delimiter}${process.env.PATH}`; },
  setSecret: secret => issueCommand('add-mask', {}, secret),
  setFailed(message) { process.exitCode = 1; core.error(message); },
  isDebug: () => process.env.RUNNER_DEBUG === '1',
  debug: message => issueCommand('debug', {}, message),
  error: (message, p) => issueCommand('error', annotation(p), message instanceof Error ? message.toString() : message),
  warning: (message, p) => issueCommand('warning', annotation(p), message instanceof Error ? message.toString() : message),
  notice: (message, p) => issueCommand('notice', annotation(p), message instanceof Error ? message.toString() : message),
  info: message => process.stdout.write(message + os.EOL),
  startGroup: name => issueCommand('group', {}, name),
  endGroup: () => issueCommand('endgroup', {}, ''),
  async group(name, fn) { core.startGroup(name); try { return await fn(); } finally { core.endGroup(); } },
  saveState: (name, value) => issueFileCommand('STATE', keyValue(name, value)),
  getState: name => process.env[`STATE_${name}`] || '',
  setCommandEcho: enabled => issueCommand('echo', {}, enabled ? 'on' : 'off'),
  getIDToken: async () => { throw new Error('the emulator has no OIDC provider'); },
  summary: new Summary(),
};

// ── @actions/github's context, read from the environment exactly as the real one is ──

const context = {
  payload: process.env.GITHUB_EVENT_PATH && fs.existsSync(process.env.GITHUB_EVENT_PATH)
    ? JSON.parse(fs.readFileSync(process.env.GITHUB_EVENT_PATH, 'utf8')) : {},
  eventName: process.env.GITHUB_EVENT_NAME,
  sha: process.env.GITHUB_SHA,
  ref: process.env.GITHUB_REF,
  workflow: process.env.GITHUB_WORKFLOW,
  action: process.env.GITHUB_ACTION,
  actor: process.env.GITHUB_ACTOR,
  job: process.env.GITHUB_JOB,
  runNumber: parseInt(process.env.GITHUB_RUN_NUMBER, 10),
  runId: parseInt(process.env.GITHUB_RUN_ID, 10),
  apiUrl: process.env.GITHUB_API_URL ?? API,
  serverUrl: process.env.GITHUB_SERVER_URL ?? 'https://github.com',
  graphqlUrl: process.env.GITHUB_GRAPHQL_URL ?? `${API}/graphql`,
  get repo() {
    const [owner, repo] = process.env.GITHUB_REPOSITORY.split('/');
    return {owner, repo};
  },
  get issue() {
    const p = this.payload;
    return {...this.repo, number: (p.issue || p.pull_request || p).number};
  },
};

// ── the fake REST API ──

class RequestError extends Error {  // what @octokit/request-error throws
  constructor(status, method, url, data) {
    const message = Array.isArray(data.errors) ? `${data.message}: ${data.errors.map(e => JSON.stringify(e)).join(', ')}` : data.message;
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.response = {status, url, headers: {}, data};
    this.request = {method, url, headers: {authorization: 'token [REDACTED]'}};
  }
}
const DOCS = 'https://docs.github.com/rest';

function now() {
  state.clock += 1;
  return new Date(Date.UTC(2024, 0, 1) + state.clock * 1000).toISOString().replace('.000Z', 'Z');
}
const clone = value => (value === undefined ? value : JSON.parse(JSON.stringify(value)));

function issueView(number) {
  return {...clone(state.issues[String(number)]), comments: (state.comments[String(number)] || []).length};
}
function pullView(number) {
  const issue = state.issues[String(number)];
  const view = {};
  for (const key of ['number', 'title', 'body', 'state', 'locked', 'labels', 'user', 'created_at', 'updated_at', 'closed_at', 'html_url']) view[key] = issue[key];
  Object.assign(view, state.pulls[String(number)], {url: issue.pull_request.url, comments: (state.comments[String(number)] || []).length});
  return clone(view);
}
function labelOf(name) {
  name = typeof name === 'string' ? name : name.name;
  let label = state.labels.find(l => l.name.toLowerCase() === name.toLowerCase());
  if (!label) { label = {name, color: 'ededed', description: null}; state.labels.push(label); }
  return {name: label.name, color: label.color, description: label.description};
}
function page(items, params, url) {  // GitHub's pagination: per_page (default 30, at most 100), page from 1
  const perPage = Math.min(Math.max(parseInt(params.per_page ?? 30, 10) || 30, 1), 100);
  const number = Math.max(parseInt(params.page ?? 1, 10) || 1, 1);
  const headers = {};
  if (number * perPage < items.length) headers.link = `<${url}?per_page=${perPage}&page=${number + 1}>; rel="next"`;
  return {status: 200, url, headers, data: clone(items.slice((number - 1) * perPage, number * perPage))};
}

// Each endpoint: its octokit route, the write permission it needs (a function of the
// target, or null for reads), and its implementation. `req` carries method/url for errors.
const endpoints = {
  'issues.listComments': ['GET /repos/{owner}/{repo}/issues/{issue_number}/comments', null, (p, req) => {
    const comments = (commentsOf(p.issue_number, req)).filter(c => !p.since || c.updated_at >= p.since);
    return page(comments, p, req.url);
  }],
  'issues.createComment': ['POST /repos/{owner}/{repo}/issues/{issue_number}/comments', p => p.issue_number, (p, req) => {
    const comments = commentsOf(p.issue_number, req);
    checkBody(p.body, 'IssueComment', req, true);
    const id = state.next_comment_id++;
    const at = now();
    const kind = state.issues[String(p.issue_number)].pull_request ? 'pull' : 'issues';
    const comment = {id, body: p.body, user: {...BOT}, created_at: at, updated_at: at, author_association: 'NONE',
      html_url: `https://github.com/${state.repository}/${kind}/${p.issue_number}#issuecomment-${id}`,
      issue_url: `${API}/repos/${state.repository}/issues/${p.issue_number}`};
    comments.push(comment);
    return {status: 201, url: req.url, headers: {}, data: clone(comment)};
  }],
  'issues.updateComment': ['PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}', p => findComment(p.comment_id)?.[0], (p, req) => {
    const found = findComment(p.comment_id);
    if (!found) notFound(req, 'issues/comments#update-an-issue-comment');
    checkBody(p.body, 'IssueComment', req, true);
    Object.assign(found[1], {body: p.body, updated_at: now()});
    return {status: 200, url: req.url, headers: {}, data: clone(found[1])};
  }],
  'issues.deleteComment': ['DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}', p => findComment(p.comment_id)?.[0], (p, req) => {
    const found = findComment(p.comment_id);
    if (!found) notFound(req, 'issues/comments#delete-an-issue-comment');
    const list = state.comments[String(found[0])];
    list.splice(list.indexOf(found[1]), 1);
    return {status: 204, url: req.url, headers: {}, data: ''};
  }],
  'issues.get': ['GET /repos/{owner}/{repo}/issues/{issue_number}', null, (p, req) => {
    if (!state.issues[String(p.issue_number)]) notFound(req, 'issues/issues#get-an-issue');
    return {status: 200, url: req.url, headers: {}, data: issueView(p.issue_number)};
  }],
  'issues.create': ['POST /repos/{owner}/{repo}/issues', () => null, (p, req) => {
    if (!p.title) invalid(req, {resource: 'Issue', code: 'missing_field', field: 'title'});
    checkBody(p.body, 'Issue', req, false);
    const number = state.next_number++;
    const at = now();
    state.issues[String(number)] = {number, title: String(p.title), body: p.body ?? null, state: 'open', state_reason: null,
      locked: false, labels: (p.labels || []).map(labelOf), user: {...BOT}, created_at: at, updated_at: at, closed_at: null,
      html_url: `https://github.com/${state.repository}/issues/${number}`, url: `${API}/repos/${state.repository}/issues/${number}`};
    state.comments[String(number)] = [];
    return {status: 201, url: req.url, headers: {}, data: issueView(number)};
  }],
  'issues.update': ['PATCH /repos/{owner}/{repo}/issues/{issue_number}', p => p.issue_number, (p, req) => {
    const issue = state.issues[String(p.issue_number)];
    if (!issue) notFound(req, 'issues/issues#update-an-issue');
    checkBody(p.body, 'Issue', req, false);
    if (p.state !== undefined && !['open', 'closed'].includes(p.state)) invalid(req, {resource: 'Issue', code: 'invalid', field: 'state'});
    const at = now();
    for (const key of ['title', 'body']) if (p[key] !== undefined) issue[key] = p[key];
    if (p.labels !== undefined) issue.labels = p.labels.map(labelOf);
    if (p.state !== undefined && p.state !== issue.state) {
      issue.state = p.state;
      issue.closed_at = p.state === 'closed' ? at : null;
      issue.state_reason = p.state === 'closed' ? (p.state_reason || 'completed') : 'reopened';
    }
    issue.updated_at = at;
    return {status: 200, url: req.url, headers: {}, data: issueView(p.issue_number)};
  }],
  'issues.listForRepo': ['GET /repos/{owner}/{repo}/issues', null, (p, req) => {
    const wanted = p.labels ? String(p.labels).split(',').map(l => l.trim().toLowerCase()).filter(Boolean) : [];
    const st = p.state || 'open';
    let items = Object.keys(state.issues).map(n => issueView(n)).filter(i =>
      (st === 'all' || i.state === st) &&
      wanted.every(w => i.labels.some(l => l.name.toLowerCase() === w)) &&
      (!p.creator || i.user.login.toLowerCase() === String(p.creator).toLowerCase()) &&
      (!p.since || i.updated_at >= p.since));
    items = sortBy(items, p.sort || 'created', p.direction || 'desc');
    return page(items, p, req.url);
  }],
  'issues.createLabel': ['POST /repos/{owner}/{repo}/labels', () => null, (p, req) => {
    if (!p.name) invalid(req, {resource: 'Label', code: 'missing_field', field: 'name'});
    if (state.labels.some(l => l.name.toLowerCase() === String(p.name).toLowerCase())) invalid(req, {resource: 'Label', code: 'already_exists', field: 'name'});
    const label = {name: String(p.name), color: p.color || 'ededed', description: p.description ?? null};
    state.labels.push(label);
    return {status: 201, url: req.url, headers: {}, data: clone(label)};
  }],
  'issues.addLabels': ['POST /repos/{owner}/{repo}/issues/{issue_number}/labels', p => p.issue_number, (p, req) => {
    const issue = state.issues[String(p.issue_number)];
    if (!issue) notFound(req, 'issues/labels#add-labels-to-an-issue');
    for (const name of (p.labels || [])) {
      const label = labelOf(name);
      if (!issue.labels.some(l => l.name === label.name)) issue.labels.push(label);
    }
    issue.updated_at = now();
    return {status: 200, url: req.url, headers: {}, data: clone(issue.labels)};
  }],
  'repos.listPullRequestsAssociatedWithCommit': ['GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls', null, (p, req) => {
    return page((state.commits[p.commit_sha] || []).map(pullView), p, req.url);
  }],
  'pulls.get': ['GET /repos/{owner}/{repo}/pulls/{pull_number}', null, (p, req) => {
    if (!state.pulls[String(p.pull_number)]) notFound(req, 'pulls/pulls#get-a-pull-request');
    return {status: 200, url: req.url, headers: {}, data: pullView(p.pull_number)};
  }],
  'pulls.list': ['GET /repos/{owner}/{repo}/pulls', null, (p, req) => {
    const st = p.state || 'open';
    let items = Object.keys(state.pulls).map(pullView).filter(pr =>
      (st === 'all' || pr.state === st) && (!p.base || pr.base.ref === p.base) &&
      (!p.head || `${pr.head.label}` === p.head || pr.head.ref === p.head));
    items = sortBy(items, p.sort === 'popularity' || p.sort === 'long-running' ? 'created' : (p.sort || 'created'),
                   p.direction || (!p.sort || p.sort === 'created' ? 'desc' : 'asc'));
    return page(items, p, req.url);
  }],
  'actions.listWorkflowRunArtifacts': ['GET /repos/{owner}/{repo}/actions/runs/{run_id}/artifacts', null, (p, req) => {
    const artifacts = String(p.run_id) === process.env.GITHUB_RUN_ID ? control.artifacts : [];
    const result = page(artifacts, p, req.url);
    result.data = {total_count: artifacts.length, artifacts: result.data};
    return result;
  }],
};

function sortBy(items, key, direction) {
  const field = key === 'updated' ? 'updated_at' : key === 'comments' ? 'comments' : 'created_at';
  const sorted = items.slice().sort((a, b) => (a[field] < b[field] ? -1 : a[field] > b[field] ? 1 : a.number - b.number));
  return direction === 'asc' ? sorted : sorted.reverse();
}
function notFound(req, doc) {
  throw new RequestError(404, req.method, req.url, {message: 'Not Found', documentation_url: `${DOCS}/${doc}`});
}
function invalid(req, error) {
  throw new RequestError(422, req.method, req.url, {message: 'Validation Failed', errors: [error], documentation_url: DOCS});
}
function commentsOf(number, req) {
  if (!state.issues[String(number)]) notFound(req, 'issues/comments#list-issue-comments');
  return state.comments[String(number)];
}
function findComment(id) {
  for (const [number, list] of Object.entries(state.comments)) {
    const comment = list.find(c => String(c.id) === String(id));
    if (comment) return [number, comment];
  }
  return null;
}
function checkBody(body, resource, req, required) {
  if (body === undefined || body === null) {
    if (required) invalid(req, {resource, code: 'missing_field', field: 'body'});
    return;
  }
  // GitHub counts characters, not UTF-16 units: spread iterates code points.
  if ([...String(body)].length > MAX_BODY) {
    invalid(req, {resource, code: 'custom', field: 'body', message: `body is too long (maximum is ${MAX_BODY} characters)`});
  }
}
function checkPermission(target, req) {
  // A write needs `issues: write`, or for a pull request `pull-requests: write` also does.
  const perms = control.permissions;
  if (!perms) return;
  const issue = target === null ? null : state.issues[String(target)];
  const scopes = issue && issue.pull_request ? ['issues', 'pull-requests'] : ['issues'];
  if (target === null && req.url.endsWith('/labels')) scopes.push('pull-requests');
  if (!scopes.some(scope => perms[scope] === 'write')) {
    throw new RequestError(403, req.method, req.url, {message: 'Resource not accessible by integration',
      documentation_url: `${DOCS}/overview/permissions-required-for-github-apps`});
  }
}

function call(key, params = {}) {
  const [route, writeTarget, handler] = endpoints[key];
  const [method, template] = route.split(' ');
  const url = API + template.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(params[name] ?? `{${name}}`));
  const req = {method, url};
  const [owner, repo] = state.repository.split('/');
  if (String(params.owner).toLowerCase() !== owner.toLowerCase() || String(params.repo).toLowerCase() !== repo.toLowerCase()) {
    // The job's token sees only its own repository.
    throw new RequestError(404, method, url, {message: 'Not Found', documentation_url: DOCS});
  }
  // The permission check needs the target (an issue or pull request number; null for the
  // repository); an unknown one is left to the handler, which answers 404.
  const target = writeTarget ? writeTarget(params) : undefined;
  if (target === null || (target !== undefined && state.issues[String(target)])) checkPermission(target, req);
  return handler(params, req);
}

function notEmulated(what) {
  return new Proxy({}, {get(target, name) {
    if (name === 'then' || typeof name === 'symbol') return undefined;
    return () => { throw new Error(`the GitHub Actions emulator does not emulate ${what}.${String(name)}`); };
  }});
}
const rest = {};
const byRoute = {};
for (const key of Object.keys(endpoints)) {
  const [ns, name] = key.split('.');
  const method = async params => call(key, params);
  method.endpoint = {DEFAULTS: {method: endpoints[key][0].split(' ')[0], url: endpoints[key][0].split(' ')[1]}};
  rest[ns] = rest[ns] || {};
  rest[ns][name] = method;
  byRoute[endpoints[key][0]] = method;
}
for (const ns of Object.keys(rest)) {
  const known = rest[ns];
  rest[ns] = new Proxy(known, {get: (t, name) => (name in t || typeof name === 'symbol' ? t[name] : notEmulated(`github.rest.${ns}`)[name])});
}
const request = async (route, params) => {
  if (!byRoute[route]) throw new Error(`the GitHub Actions emulator does not emulate ${route}`);
  return byRoute[route](params);
};
function methodOf(route) {
  if (typeof route === 'function') return route;
  if (byRoute[route]) return byRoute[route];
  throw new Error(`the GitHub Actions emulator does not emulate ${route}`);
}
function normalize(response) {  // octokit flattens {total_count, <items>: [...]} list responses
  if (response.data && typeof response.data === 'object' && !Array.isArray(response.data) && 'total_count' in response.data) {
    const {total_count, incomplete_results, repository_selection, ...rest_} = response.data;
    return {...response, data: Object.values(rest_)[0] || []};
  }
  return response;
}
function iterator(route, params = {}) {
  const method = methodOf(route);
  let next = 1;
  return {[Symbol.asyncIterator]: () => ({
    async next() {
      if (next === null) return {done: true};
      const response = normalize(await method({...params, page: next}));
      next = /rel="next"/.test(response.headers.link || '') ? next + 1 : null;
      return {value: response, done: false};
    },
  })};
}
async function paginate(route, params, mapFn) {
  if (typeof params === 'function') { mapFn = params; params = undefined; }
  let results = [];
  let stop = false;
  const done = () => { stop = true; };
  for await (const response of iterator(route, params)) {
    results = results.concat(mapFn ? mapFn(response, done) : response.data);
    if (stop) break;
  }
  return results;
}
paginate.iterator = iterator;
const github = {rest, request, paginate, graphql: async () => { throw new Error('the GitHub Actions emulator does not emulate GraphQL'); }};

// ── @actions/exec (enough for exec/getExecOutput); glob and io are not emulated ──

const exec = {
  async getExecOutput(command, args = [], options = {}) {
    const result = childProcess.spawnSync(command, args, {cwd: options.cwd, env: options.env || process.env, input: options.input, encoding: 'utf8', shell: false});
    if (result.error) throw result.error;
    if (!options.silent) { process.stdout.write(result.stdout); process.stderr.write(result.stderr); }
    if (result.status !== 0 && !options.ignoreReturnCode) throw new Error(`The process '${command}' failed with exit code ${result.status}`);
    return {exitCode: result.status, stdout: result.stdout, stderr: result.stderr};
  },
  async exec(command, args, options) { return (await exec.getExecOutput(command, args, options)).exitCode; },
};

// ── require as the action wraps it: relative paths from the working directory ──

const wrapRequire = new Proxy(require, {
  apply(target, thisArg, [moduleID]) {
    if (moduleID.startsWith('.')) return target.apply(thisArg, [path.resolve(moduleID)]);
    return target.apply(thisArg, [target.resolve.apply(thisArg, [moduleID, {paths: [process.cwd()]}])]);
  },
  get() { return undefined; },  // the real wrapper's get trap returns nothing either (require.resolve is undefined)
});

// ── main, as in actions/github-script src/main.ts ──

process.on('unhandledRejection', handleError);
main().catch(handleError);

async function main() {
  getInput('github-token', {required: true});
  core.getBooleanInput('debug');
  const script = getInput('script', {required: true});
  const args = {require: wrapRequire, __original_require__: require, github, octokit: github, context, core, exec,
                glob: notEmulated('glob'), io: notEmulated('io')};
  const AsyncFunction = Object.getPrototypeOf(async () => null).constructor;
  const result = await new AsyncFunction(...Object.keys(args), script)(...Object.values(args));
  const encoding = getInput('result-encoding') || 'json';
  let output;
  if (encoding === 'json') output = JSON.stringify(result);
  else if (encoding === 'string') output = String(result);
  else throw new Error('"result-encoding" must be either "string" or "json"');
  core.setOutput('result', output);
}

function handleError(err) {
  console.error(err);
  core.setFailed(`Unhandled error: ${err}`);
}

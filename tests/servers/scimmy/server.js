// A second, independent SCIM 2.0 server for the SCIM store's tests: SCIMMY (npm `scimmy`) behind its express
// routers (`scimmy-routers`), with in-memory handlers, as an application would write them following SCIMMY's
// documentation. The handlers only keep resources: everything SCIM-shaped (paths, filters, PATCH, Bulk, paging,
// the ServiceProviderConfig) is SCIMMY's own, on purpose left as SCIMMY does it, so the store meets a server that
// differs from scim2-server where RFC 7644 lets servers differ.
//
//     node server.js --port 8080 [--token TOKEN]     (or the token in SCIMMY_TOKEN)
//
// Serves http://127.0.0.1:PORT/scim/v2 with a bearer token; one line per request on stdout.
import crypto from "node:crypto";
import fs from "node:fs";
import process from "node:process";
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

function option(name) {
    const index = process.argv.indexOf(`--${name}`);
    return index > 0 ? process.argv[index + 1] : undefined;
}

const port = Number(option("port") ?? process.env.SCIMMY_PORT ?? 0);
const token = option("token") ?? process.env.SCIMMY_TOKEN;
if (!token) {
    console.error("server.js: no bearer token (--token or SCIMMY_TOKEN)");
    process.exit(64);
}
const expected = Buffer.from(`Bearer ${token}`);

// ── the application's data: plain objects by id ──

const stores = {User: new Map(), Group: new Map()};

function now() {
    return new Date().toISOString();
}

function plain(instance) {
    return JSON.parse(JSON.stringify(instance));
}

function egress(kind) {
    return (resource) => {
        const store = stores[kind];
        if (resource.id) {
            if (!store.has(resource.id)) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
            return plain(store.get(resource.id));
        }
        const all = [...store.values()].map(plain);
        return resource.filter ? resource.filter.match(all) : all;
    };
}

function ingress(kind) {
    return (resource, instance) => {
        const store = stores[kind];
        const data = plain(instance);
        if (kind === "User") {
            const name = String(data.userName ?? "").toLowerCase();
            const taken = [...store.values()].find((u) => u.userName.toLowerCase() === name && u.id !== resource.id);
            if (taken) throw new SCIMMY.Types.Error(409, "uniqueness", `userName ${data.userName} is already taken`);
        }
        if (resource.id) {
            const existing = store.get(resource.id);
            if (!existing) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
            const replaced = {...data, id: resource.id, meta: {created: existing.meta.created, lastModified: now()}};
            store.set(resource.id, replaced);
            return plain(replaced);
        }
        const id = crypto.randomUUID();
        const created = {...data, id, meta: {created: now(), lastModified: now()}};
        store.set(id, created);
        return plain(created);
    };
}

function degress(kind) {
    return (resource) => {
        if (!stores[kind].delete(resource.id)) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
        if (kind === "User") {  // the application keeps its groups to its users
            for (const group of stores.Group.values()) {
                group.members = (group.members ?? []).filter((m) => m.value !== resource.id);
            }
        }
    };
}

SCIMMY.Resources.declare(SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false))
    .ingress(ingress("User")).egress(egress("User")).degress(degress("User"));
SCIMMY.Resources.declare(SCIMMY.Resources.Group)
    .ingress(ingress("Group")).egress(egress("Group")).degress(degress("Group"));

// ── HTTP ──

const app = express();
app.use((req, res, next) => {
    const started = Date.now();
    res.on("finish", () => console.log(`${req.method} ${req.originalUrl} ${res.statusCode} ${Date.now() - started}ms`));
    next();
});
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    handler: (request) => {
        const given = Buffer.from(request.header("Authorization") ?? "");
        if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
            throw new Error("Authorization failed: the bearer token is missing or wrong");
        }
        return "reconciler";
    },
}));

function version(module) {
    const manifest = new URL(`./node_modules/${module}/package.json`, import.meta.url);
    return JSON.parse(fs.readFileSync(manifest, "utf8")).version;
}

const server = app.listen(port, "127.0.0.1", () => {
    const versions = ["scimmy", "scimmy-routers", "express"].map((m) => `${m} ${version(m)}`).join(", ");
    console.log(`${versions}: listening on http://127.0.0.1:${server.address().port}/scim/v2`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
    process.on(signal, () => server.close(() => process.exit(0)));
}

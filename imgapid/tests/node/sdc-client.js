#!/usr/bin/env node
/*
 * Drives imgapid with the real Triton IMGAPI client (npm sdc-clients) and
 * validates every manifest it returns with npm imgmanifest, repeating the
 * checks SmartOS imgadm makes: ping says imgapi, manifests upgrade and
 * validate, the file download has the right size, SHA-1 and Content-MD5, and
 * the publish path (import, add file, activate, delete) works with Basic auth.
 *
 * Usage: node sdc-client.js URL USER PASSWORD
 * Prints one line per step; exits non-zero on the first failure.
 */
'use strict';

var assert = require('assert');
var crypto = require('crypto');
var fs = require('fs');
var os = require('os');
var path = require('path');
var imgapi = require('sdc-clients/lib/imgapi');
var imgmanifest = require('imgmanifest');

var url = process.argv[2];
var user = process.argv[3];
var password = process.argv[4];
assert.ok(url && user && password, 'usage: sdc-client.js URL USER PASSWORD');

function quietLog() {
    // sdc-clients wants a bunyan-like logger; keep its chatter out of stdout.
    var noop = function () {};
    var log = {trace: noop, debug: noop, info: noop, warn: noop, error: noop,
        fatal: noop};
    log.child = function () { return log; };
    return log;
}

var anon = imgapi.createClient({url: url, version: '~2', agent: false,
    log: quietLog()});
var admin = imgapi.createClient({url: url, version: '~2', agent: false,
    log: quietLog(), user: user, password: password});
var wrong = imgapi.createClient({url: url, version: '~2', agent: false,
    log: quietLog(), user: user, password: password + 'x'});

function step(name) { console.log('ok - ' + name); }

function validate(m) {
    var up = imgmanifest.upgradeManifest(m);
    var errs = imgmanifest.validateMinimalManifest(up);
    assert.ok(!errs, 'minimal: ' + JSON.stringify(errs));
    errs = imgmanifest.validatePublicManifest(up) || [];
    // `activated` is an internal server field that public manifests omit.
    errs = errs.filter(function (e) { return e.field !== 'activated'; });
    assert.equal(errs.length, 0, 'public: ' + JSON.stringify(errs));
    assert.equal(up.state, 'active');
}

var tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'imgapid-node-'));
var data = crypto.randomBytes(256 * 1024 + 17);
var filePath = path.join(tmp, 'image.zfs.gz');
fs.writeFileSync(filePath, data);
var sha1 = crypto.createHash('sha1').update(data).digest('hex');
var uuid = crypto.randomUUID();
var manifest = {
    v: 2, uuid: uuid, owner: '00000000-0000-0000-0000-000000000000',
    name: 'node-published', version: '1.0.0', description: 'from sdc-clients',
    type: 'zone-dataset', os: 'bsd', public: true, disabled: false,
    requirements: {networks: [{name: 'net0', description: 'public'}]},
    users: [{name: 'root'}], tags: {role: 'test'}
};

function main(cb) {
    anon.ping(function (err, pong) {
        if (err) return cb(err);
        assert.strictEqual(pong.imgapi, true);
        step('ping imgapi=' + pong.imgapi);
        anon.adminImportImage(manifest, function (err2) {
            assert.ok(err2, 'anonymous import must fail');
            assert.equal(err2.statusCode, 401);
            wrong.adminImportImage(manifest, function (err3) {
                assert.ok(err3 && err3.statusCode === 401, 'wrong password');
                step('writes without or with wrong credentials: 401');
                publish(cb);
            });
        });
    });
}

function publish(cb) {
    admin.adminImportImage(manifest, function (err, img) {
        if (err) return cb(err);
        assert.equal(img.state, 'unactivated');
        step('adminImportImage');
        admin.addImageFile({uuid: uuid, file: filePath, compression: 'gzip',
                sha1: sha1, size: data.length}, function (err2, img2) {
            if (err2) return cb(err2);
            assert.equal(img2.files[0].sha1, sha1);
            assert.equal(img2.files[0].size, data.length);
            step('addImageFile');
            admin.activateImage(uuid, function (err3, img3) {
                if (err3) return cb(err3);
                assert.equal(img3.state, 'active');
                step('activateImage');
                read(cb);
            });
        });
    });
}

function read(cb) {
    anon.listImages({}, function (err, images) {
        if (err) return cb(err);
        var mine = images.filter(function (i) { return i.uuid === uuid; });
        assert.equal(mine.length, 1, 'listed');
        images.forEach(validate);
        step('listImages (' + images.length + ' images, all valid)');
        anon.listImages({name: 'node-published', limit: 5}, function (e0, few) {
            if (e0) return cb(e0);
            assert.equal(few.length, 1);
            anon.getImage(uuid, function (err2, img) {
                if (err2) return cb(err2);
                validate(img);
                assert.deepEqual(img.tags, {role: 'test'});
                step('getImage');
                var out = path.join(tmp, 'download');
                // getImageFile asserts Content-MD5 itself.
                anon.getImageFile(uuid, out, function (err3, res) {
                    if (err3) return cb(err3);
                    var got = fs.readFileSync(out);
                    assert.equal(got.length, data.length);
                    assert.equal(crypto.createHash('sha1').update(got)
                        .digest('hex'), sha1);
                    assert.equal(res.headers['content-md5'],
                        crypto.createHash('md5').update(data).digest('base64'));
                    step('getImageFile (Content-MD5 checked)');
                    stream(cb);
                });
            });
        });
    });
}

function stream(cb) {
    anon.getImageFileStream(uuid, function (err, res) {
        if (err) return cb(err);
        assert.equal(Number(res.headers['content-length']), data.length);
        var h = crypto.createHash('sha1');
        var n = 0;
        res.on('data', function (c) { h.update(c); n += c.length; });
        res.on('end', function () {
            assert.equal(n, data.length);
            assert.equal(h.digest('hex'), sha1);
            step('getImageFileStream (length and sha1)');
            anon.getImage(crypto.randomUUID(), function (err2) {
                assert.ok(err2 && err2.statusCode === 404);
                assert.equal(err2.body.code, 'ResourceNotFound');
                step('unknown image: 404 ResourceNotFound');
                admin.deleteImage(uuid, function (err3) {
                    if (err3) return cb(err3);
                    anon.getImage(uuid, function (err4) {
                        assert.ok(err4 && err4.statusCode === 404);
                        step('deleteImage');
                        cb();
                    });
                });
            });
        });
        res.resume();
    });
}

main(function (err) {
    fs.rmSync(tmp, {recursive: true, force: true});
    if (err) {
        console.error('not ok - ' + (err.stack || err));
        process.exit(1);
    }
    console.log('all sdc-clients checks passed');
    process.exit(0);
});

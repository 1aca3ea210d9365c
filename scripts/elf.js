'use strict';
// The few ELF facts the build and the prebuilt install need, read without binutils (a machine
// installing a prebuilt binary may have no readelf): a shared library's DT_NEEDED names and its
// DT_RPATH / DT_RUNPATH, and an in-place rewrite of a placeholder search path.

const fs = require('fs');

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

function readAt(fd, offset, length) {
  const buffer = Buffer.alloc(length);
  const read = fs.readSync(fd, buffer, 0, length, offset);
  return buffer.subarray(0, read);
}

function readCString(fd, offset) {
  const chunks = [];
  for (let at = offset; ; at += 256) {
    const chunk = readAt(fd, at, 256);
    const end = chunk.indexOf(0);
    if (end >= 0 || chunk.length === 0) {
      chunks.push(end >= 0 ? chunk.subarray(0, end) : chunk);
      return Buffer.concat(chunks).toString('utf8');
    }
    chunks.push(chunk);
  }
}

/** DT_NEEDED, DT_RPATH and DT_RUNPATH of a 64-bit little-endian ELF file (x86-64, aarch64). */
function readDynamic(file) {
  const fd = fs.openSync(file, 'r');
  try {
    const header = readAt(fd, 0, 64);
    if (header.length < 64 || header.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF file`);
    if (header[4] !== 2 || header[5] !== 1) throw new Error(`${file} is not a 64-bit little-endian ELF file`);
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = readAt(fd, phoff, phentsize * phnum);
    const loads = [];
    let dynamic = null;
    for (let i = 0; i < phnum; i++) {
      const at = i * phentsize;
      const segment = {
        type: table.readUInt32LE(at),
        offset: Number(table.readBigUInt64LE(at + 8)),
        vaddr: Number(table.readBigUInt64LE(at + 16)),
        filesz: Number(table.readBigUInt64LE(at + 32)),
      };
      if (segment.type === PT_LOAD) loads.push(segment);
      if (segment.type === PT_DYNAMIC) dynamic = segment;
    }
    if (!dynamic) return { needed: [], rpath: null, runpath: null };
    const toOffset = (vaddr) => {
      const load = loads.find((s) => vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz);
      if (!load) throw new Error(`${file}: address 0x${vaddr.toString(16)} lies in no loaded segment`);
      return vaddr - load.vaddr + load.offset;
    };
    const entries = readAt(fd, dynamic.offset, dynamic.filesz);
    let strtab = null;
    const wanted = [];
    for (let at = 0; at + 16 <= entries.length; at += 16) {
      const tag = entries.readBigUInt64LE(at);
      const value = Number(entries.readBigUInt64LE(at + 8));
      if (tag === DT_NULL) break;
      if (tag === DT_STRTAB) strtab = toOffset(value);
      else if (tag === DT_NEEDED || tag === DT_RPATH || tag === DT_RUNPATH) wanted.push([tag, value]);
    }
    const out = { needed: [], rpath: null, runpath: null };
    if (strtab === null) return out;
    for (const [tag, index] of wanted) {
      const text = readCString(fd, strtab + index);
      if (tag === DT_NEEDED) out.needed.push(text);
      else if (tag === DT_RPATH) out.rpath = text;
      else out.runpath = text;
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Replaces the search path that starts with `placeholder` in `file` by `searchPath`, in place:
 * the string table keeps its size and the rest of the old string becomes NUL bytes, the way
 * conda relocates prefixes. Returns false when the file holds no placeholder.
 */
function replaceSearchPath(file, placeholder, searchPath) {
  const bytes = fs.readFileSync(file);
  const marker = Buffer.from(placeholder, 'utf8');
  const start = bytes.indexOf(marker);
  if (start < 0) return false;
  if (bytes.indexOf(marker, start + 1) >= 0) throw new Error(`${file} holds the search-path placeholder twice`);
  const end = bytes.indexOf(0, start);
  const replacement = Buffer.from(searchPath, 'utf8');
  if (replacement.length > end - start) {
    throw new Error(`the library search path (${replacement.length} bytes) does not fit the ${end - start} bytes ` +
      `reserved in ${file}: ${searchPath}`);
  }
  bytes.fill(0, start, end);
  replacement.copy(bytes, start);
  fs.writeFileSync(file, bytes);
  return true;
}

module.exports = { readDynamic, replaceSearchPath };

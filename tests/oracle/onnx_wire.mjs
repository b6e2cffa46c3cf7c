// onnx_wire.mjs — a minimal protobuf wire-format reader for ONNX files,
// shared by the test oracles (equiv.mjs, ort_fusion.mjs).  No bnfold code:
// the oracles read models on their own.

// Reader over buf[start, end): enough of onnx.proto for graph inputs,
// initializer names, nodes and TensorProto files.
export class Pb {
  constructor(buf, start = 0, end = buf.length) { this.buf = buf; this.pos = start; this.end = end; }
  eof() { return this.pos >= this.end; }
  varint() {
    let result = 0, mul = 1, b;
    do {
      if (this.pos >= this.end) throw new Error('truncated varint');
      b = this.buf[this.pos++];
      result += (b & 0x7f) * mul;
      mul *= 128;
    } while (b & 0x80);
    return result;
  }
  // int64 varint as BigInt (two's complement for negatives).
  varint64() {
    let result = 0n, shift = 0n, b;
    do {
      if (this.pos >= this.end) throw new Error('truncated varint');
      b = this.buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
    } while (b & 0x80);
    return BigInt.asIntN(64, result);
  }
  // Iterate fields: yields [fieldNumber, wireType, valueOrSubReader].
  *fields() {
    while (!this.eof()) {
      const key = this.varint();
      const fno = Math.floor(key / 8), wt = key & 7;
      if (wt === 0) {
        const start = this.pos;
        this.varint();
        yield [fno, wt, new Pb(this.buf, start, this.pos)];
      } else if (wt === 1) {
        yield [fno, wt, new Pb(this.buf, this.pos, this.pos + 8)];
        this.pos += 8;
      } else if (wt === 2) {
        const len = this.varint();
        if (this.pos + len > this.end) throw new Error('truncated length-delimited field');
        yield [fno, wt, new Pb(this.buf, this.pos, this.pos + len)];
        this.pos += len;
      } else if (wt === 5) {
        yield [fno, wt, new Pb(this.buf, this.pos, this.pos + 4)];
        this.pos += 4;
      } else {
        throw new Error(`unsupported wire type ${wt}`);
      }
    }
  }
  string() { return this.buf.toString('utf8', this.pos, this.end); }
  bytes() { return this.buf.subarray(this.pos, this.end); }
}

// ONNX TensorProto.DataType -> ORT tensor type name.
export const ONNX_TYPES = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64',
  8: 'string', 9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64',
  14: 'complex64', 15: 'complex128', 16: 'bfloat16',
};

export function parseValueInfo(r) {
  const vi = { name: '', type: null, shape: null };
  for (const [f, , v] of r.fields()) {
    if (f === 1) vi.name = v.string();
    else if (f === 2) {
      for (const [tf, , tv] of v.fields()) {
        if (tf !== 1) { vi.type = vi.type || 'non-tensor'; continue; }
        for (const [ttf, , ttv] of tv.fields()) {
          if (ttf === 1) vi.type = ONNX_TYPES[ttv.varint()] || 'unknown';
          else if (ttf === 2) {
            vi.shape = [];
            for (const [sf, , sv] of ttv.fields()) {
              if (sf !== 1) continue;
              let d = '';
              for (const [df, , dv] of sv.fields()) {
                if (df === 1) d = dv.varint();
                else if (df === 2) d = dv.string();
              }
              vi.shape.push(d);
            }
          }
        }
      }
    }
  }
  return vi;
}

// Every node of a model, subgraphs included (If/Loop/Scan bodies), and the
// names of every initializer: {nodes: [{op, domain, name, inputs, outputs,
// graph}], initializers: Set}.  graph is the path of graph names.
export function modelNodes(buf) {
  const res = { nodes: [], initializers: new Set() };
  let graph = null;
  for (const [f, wt, v] of new Pb(buf).fields()) if (f === 7 && wt === 2) graph = v;
  if (graph) walkGraph(graph, 'main', res);
  return res;
}

function walkGraph(g, where, res) {
  const nodes = [];
  let name = '';
  for (const [f, , v] of g.fields()) {
    if (f === 1) nodes.push(v);
    else if (f === 2) name = v.string();
    else if (f === 5) {
      for (const [tf, , tv] of v.fields()) if (tf === 8) res.initializers.add(tv.string());
    } else if (f === 15) {
      for (const [sf, , sv] of v.fields()) {
        if (sf !== 1) continue;
        for (const [tf, , tv] of sv.fields()) if (tf === 8) res.initializers.add(tv.string());
      }
    }
  }
  const here = where === 'main' && name ? name : where;
  for (const n of nodes) {
    const node = { op: '', domain: '', name: '', inputs: [], outputs: [], graph: here };
    const subs = [];
    for (const [nf, , nv] of n.fields()) {
      if (nf === 1) node.inputs.push(nv.string());
      else if (nf === 2) node.outputs.push(nv.string());
      else if (nf === 3) node.name = nv.string();
      else if (nf === 4) node.op = nv.string();
      else if (nf === 7) node.domain = nv.string();
      else if (nf === 5) {
        // AttributeProto: g = 6, graphs = 11
        for (const [af, , av] of nv.fields()) if (af === 6 || af === 11) subs.push(av);
      }
    }
    res.nodes.push(node);
    for (const sg of subs) walkGraph(sg, `${here}/${node.name || node.op}`, res);
  }
}

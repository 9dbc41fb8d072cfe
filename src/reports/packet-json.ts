import type { Packet } from '../packets/packet.js';
import { PACKET_NAMES, PacketType } from '../packets/packet-type.js';
import { hex64 } from './hex.js';

/** A plain JSON object describing a packet (for `--json` output). */
export function packetToJson(pkt: Packet): Record<string, unknown> {
  const o: Record<string, unknown> = { offset: pkt.offset, type: PACKET_NAMES[pkt.type], size: pkt.size };
  const h = (): string => '0x' + hex64(pkt.hi, pkt.lo);
  switch (pkt.type) {
    case PacketType.Fup: case PacketType.Tip: case PacketType.TipPge: case PacketType.TipPgd:
      o.ipc = pkt.ipc;
      if (pkt.ipc !== 0) o.ip = h();
      break;
    case PacketType.Tnt8: case PacketType.Tnt64: {
      let s = '';
      for (let bit = pkt.tntSize - 1; bit >= 0; bit--) s += Math.floor(pkt.tntBits / 2 ** bit) % 2 ? 'T' : 'N';
      o.tnt = s;
      break;
    }
    case PacketType.ModeExec: o.csl = pkt.csl; o.csd = pkt.csd; o.if = pkt.iflag; break;
    case PacketType.ModeTsx: o.intx = pkt.intx; o.abrt = pkt.abrt; break;
    case PacketType.Pip: o.cr3 = h(); o.nr = pkt.nr; break;
    case PacketType.Vmcs: o.base = h(); break;
    case PacketType.Tsc: o.tsc = h(); break;
    case PacketType.Cbr: o.ratio = pkt.ratio; break;
    case PacketType.Tma: o.ctc = pkt.ctc; o.fc = pkt.fc; break;
    case PacketType.Mtc: o.ctc = pkt.ctc; break;
    case PacketType.Cyc: o.cyc = pkt.hi ? h() : pkt.cyc; break;
    case PacketType.Mnt: o.payload = h(); break;
    case PacketType.Exstop: o.ip = pkt.ip; break;
    case PacketType.Mwait: o.hints = pkt.hints; o.ext = pkt.ext; break;
    case PacketType.Pwre: o.state = pkt.state; o.subState = pkt.subState; o.hw = pkt.hw; break;
    case PacketType.Pwrx:
      o.last = pkt.last; o.deepest = pkt.deepest;
      o.wake = pkt.wakeInterrupt ? 'interrupt' : pkt.wakeStore ? 'store' : pkt.wakeAutonomous ? 'autonomous' : 'none';
      break;
    case PacketType.Ptw: o.payloadBytes = pkt.plc === 0 ? 4 : 8; o.payload = h(); o.ip = pkt.ip; break;
    case PacketType.Cfe: o.cfeType = pkt.cfeType; o.vector = pkt.vector; o.ip = pkt.ip; break;
    case PacketType.Evd: o.evdType = pkt.evdType; o.payload = h(); break;
    case PacketType.Trig:
      o.trbv = pkt.trbv; o.ip = pkt.ip; o.mult = pkt.mult;
      if (pkt.icntv) o.icnt = pkt.icnt;
      break;
    case PacketType.Bbp: o.itemSize = pkt.bbpSize; o.blockType = pkt.bbpType; break;
    case PacketType.Bip: o.id = pkt.bipId; o.payload = h(); break;
    case PacketType.Bep: o.ip = pkt.ip; break;
  }
  return o;
}

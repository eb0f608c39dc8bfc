import { z } from 'zod';
import { virtError } from '../errors.ts';

/**
 * virsh send-key: keycodes in one of libvirt's codesets (virKeycodeSet), checked and translated as
 * libvirt does with its keymap tables. The tables below are the linux keycodes that keycodemapdb
 * (the version libvirt 9.0 builds with) knows, with their AT set 1 scancodes; the other codesets
 * follow from those: xt and atset1 are set 1 (a prefixed key as 0xe0XX), xt_kbd writes a
 * prefixed key as 0x100|code, and qnum (qemu's number) as 0x80|code.
 */

export const KEY_CODESETS = ['linux', 'xt', 'atset1', 'atset2', 'atset3', 'os_x', 'xt_kbd', 'win32', 'usb', 'qnum', 'rfb'] as const;
export const KeyCodeset = z.enum(KEY_CODESETS);
export type KeyCodeset = z.infer<typeof KeyCodeset>;

/** The codesets whose tables are here; virsh knows the others, which are refused as unsupported. */
const SUPPORTED: ReadonlySet<KeyCodeset> = new Set(['linux', 'xt', 'atset1', 'xt_kbd', 'qnum', 'rfb']);

/** VIR_DOMAIN_SEND_KEY_MAX_KEYS. */
export const MAX_KEYS = 16;

/** virsh send-key, as recorded in the log: what was asked, in the codeset it was asked in. */
export const KeyPress = z.object({
  codeset: KeyCodeset,
  keycodes: z.array(z.number().int().nonnegative().max(0xffffffff)).min(1).max(MAX_KEYS, 'too many keycodes'),
  /** How long the keys are held, in ms (qemu's default, 100 ms, when absent or 0). */
  holdtimeMs: z.number().int().nonnegative().max(0xffffffff).optional(),
});
export type KeyPress = z.infer<typeof KeyPress>;

const LINUX_TO_SET1 = '1:1 2:2 3:3 4:4 5:5 6:6 7:7 8:8 9:9 a:a b:b c:c d:d e:e f:f 10:10 11:11 12:12 13:13 14:14 15:15 16:16 17:17 18:18 19:19 1a:1a 1b:1b 1c:1c 1d:1d 1e:1e 1f:1f 20:20 21:21 22:22 23:23 24:24 25:25 26:26 27:27 28:28 29:29 2a:2a 2b:2b 2c:2c 2d:2d 2e:2e 2f:2f 30:30 31:31 32:32 33:33 34:34 35:35 36:36 37:37 38:38 39:39 3a:3a 3b:3b 3c:3c 3d:3d 3e:3e 3f:3f 40:40 41:41 42:42 43:43 44:44 45:45 46:46 47:47 48:48 49:49 4a:4a 4b:4b 4c:4c 4d:4d 4e:4e 4f:4f 50:50 51:51 52:52 53:53 54:54 55:76 56:56 57:57 58:58 59:73 5a:78 5b:77 5c:79 5d:70 5e:7b 5f:5c 60:e01c 61:e01d 62:e035 63:54 64:e038 65:5b 66:e047 67:e048 68:e049 69:e04b 6a:e04d 6b:e04f 6c:e050 6d:e051 6e:e052 6f:e053 70:e06f 71:e020 72:e02e 73:e030 74:e05e 75:59 76:e04e 77:e046 78:e00b 79:7e 7a:72 7b:71 7c:7d 7d:e05b 7e:e05c 7f:e05d 80:e068 81:e005 82:e006 83:e007 84:e00c 85:e078 86:64 87:65 88:e041 89:e03c 8a:e075 8b:e01e 8c:e021 8d:66 8e:e05f 8f:e063 90:67 91:68 92:69 93:e013 94:e01f 95:e017 96:e002 97:6a 98:e012 99:6b 9a:e026 9b:e06c 9c:e066 9d:e06b 9e:e06a 9f:e069 a0:e023 a1:6c a2:e07d a3:e019 a4:e022 a5:e010 a6:e024 a7:e031 a8:e018 a9:63 ab:e001 ac:e032 ad:e067 b0:e008 b1:75 b2:e00f b3:e076 b4:e07b b5:e009 b6:e00a b7:5d b8:5e b9:5f ba:55 bb:e003 bc:e077 bd:e004 be:5a bf:74 c0:e079 c1:6d c2:6f c3:e015 c4:e016 c5:e01a c6:e01b c7:e027 c8:e028 c9:e029 ca:e02b cb:e02c cc:e02d cd:e025 ce:e02f cf:e033 d0:e034 d1:e036 d2:e039 d3:e03a d4:e03b d5:e03d d6:e03e d7:e03f d8:e040 d9:e065 da:e042 db:e043 dc:e044 dd:e045 de:e014 df:e04a e0:e04c e1:e054 e2:e06d e3:e056 e4:e057 e5:e058 e6:e059 e7:e05a e8:e064 e9:e00e ea:e055 eb:e070 ec:e071 ed:e072 ee:e073 ef:e074';
const LINUX_ONLY = '0 aa ae af f0 f1 f2 f3 f4 f5 f6 f7 f8 f9 fa fb fc fd fe ff 100 101 102 103 104 105 106 107 108 109 110 111 112 113 114 115 116 117 120 121 122 123 124 125 126 127 128 129 12a 12b 12f 130 131 132 133 134 135 136 137 138 139 13a 13b 13c 13d 13e 140 141 142 143 144 145 146 147 14a 14b 14c 14d 14e 14f 150 151 160 161 162 163 164 165 166 167 168 169 16a 16b 16c 16d 16e 16f 170 171 172 173 174 175 176 177 178 179 17a 17b 17c 17d 17e 17f 180 181 182 183 184 185 186 187 188 189 18a 18b 18c 18d 18e 18f 190 191 192 193 194 195 196 197 198 199 19a 19b 19c 19d 19e 19f 1a0 1a1 1a2 1a3 1a4 1a5 1a6 1a7 1a8 1a9 1aa 1ab 1ac 1ad 1ae 1af 1b0 1b1 1b2 1b3 1b4 1b5 1b6 1b7 1c0 1c1 1c2 1c3 1d0 1d1 1d2 1d3 1d4 1d5 1d6 1d7 1d8 1d9 1da 1db 1dc 1dd 1de 1df 1e0 1e1 1e2 1e3 1e4 1f1 1f2 1f3 1f4 1f5 1f6 1f7 1f8 1f9 1fa 200 201 202 203 204 205 206 207 208 209 20a 20b 20c';
const LINUX_NAMES = 'RESERVED:0 ESC:1 1:2 2:3 3:4 4:5 5:6 6:7 7:8 8:9 9:a 0:b MINUS:c EQUAL:d BACKSPACE:e TAB:f Q:10 W:11 E:12 R:13 T:14 Y:15 U:16 I:17 O:18 P:19 LEFTBRACE:1a RIGHTBRACE:1b ENTER:1c LEFTCTRL:1d A:1e S:1f D:20 F:21 G:22 H:23 J:24 K:25 L:26 SEMICOLON:27 APOSTROPHE:28 GRAVE:29 SHIFT:2a LEFTSHIFT:2a BACKSLASH:2b Z:2c X:2d C:2e V:2f B:30 N:31 M:32 COMMA:33 DOT:34 SLASH:35 RIGHTSHIFT:36 KPASTERISK:37 LEFTALT:38 SPACE:39 CAPSLOCK:3a F1:3b F2:3c F3:3d F4:3e F5:3f F6:40 F7:41 F8:42 F9:43 F10:44 NUMLOCK:45 SCROLLLOCK:46 KP7:47 KP8:48 KP9:49 KPMINUS:4a KP4:4b KP5:4c KP6:4d KPPLUS:4e KP1:4f KP2:50 KP3:51 KP0:52 KPDOT:53 ZENKAKUHANKAKU:55 102ND:56 F11:57 F12:58 RO:59 KATAKANA:5a HIRAGANA:5b HENKAN:5c KATAKANAHIRAGANA:5d MUHENKAN:5e KPJPCOMMA:5f KPENTER:60 RIGHTCTRL:61 KPSLASH:62 SYSRQ:63 RIGHTALT:64 LINEFEED:65 HOME:66 UP:67 PAGEUP:68 LEFT:69 RIGHT:6a END:6b DOWN:6c PAGEDOWN:6d INSERT:6e DELETE:6f MACRO:70 MUTE:71 VOLUMEDOWN:72 VOLUMEUP:73 POWER:74 KPEQUAL:75 KPPLUSMINUS:76 PAUSE:77 SCALE:78 KPCOMMA:79 HANGEUL:7a HANJA:7b YEN:7c LEFTMETA:7d RIGHTMETA:7e COMPOSE:7f STOP:80 AGAIN:81 PROPS:82 UNDO:83 FRONT:84 COPY:85 OPEN:86 PASTE:87 FIND:88 CUT:89 HELP:8a MENU:8b CALC:8c SETUP:8d SLEEP:8e WAKEUP:8f FILE:90 SENDFILE:91 DELETEFILE:92 XFER:93 PROG1:94 PROG2:95 WWW:96 MSDOS:97 SCREENLOCK:98 DIRECTION:99 CYCLEWINDOWS:9a MAIL:9b BOOKMARKS:9c COMPUTER:9d BACK:9e FORWARD:9f CLOSECD:a0 EJECTCD:a1 EJECTCLOSECD:a2 NEXTSONG:a3 PLAYPAUSE:a4 PREVIOUSSONG:a5 STOPCD:a6 RECORD:a7 REWIND:a8 PHONE:a9 ISO:aa CONFIG:ab HOMEPAGE:ac REFRESH:ad EXIT:ae MOVE:af EDIT:b0 SCROLLUP:b1 SCROLLDOWN:b2 KPLEFTPAREN:b3 KPRIGHTPAREN:b4 NEW:b5 REDO:b6 F13:b7 F14:b8 F15:b9 F16:ba F17:bb F18:bc F19:bd F20:be F21:bf F22:c0 F23:c1 F24:c2 PLAYCD:c8 PAUSECD:c9 PROG3:ca PROG4:cb DASHBOARD:cc SUSPEND:cd CLOSE:ce PLAY:cf FASTFORWARD:d0 BASSBOOST:d1 PRINT:d2 HP:d3 CAMERA:d4 SOUND:d5 QUESTION:d6 EMAIL:d7 CHAT:d8 SEARCH:d9 CONNECT:da FINANCE:db SPORT:dc SHOP:dd ALTERASE:de CANCEL:df BRIGHTNESSDOWN:e0 BRIGHTNESSUP:e1 MEDIA:e2 SWITCHVIDEOMODE:e3 KBDILLUMTOGGLE:e4 KBDILLUMDOWN:e5 KBDILLUMUP:e6 SEND:e7 REPLY:e8 FORWARDMAIL:e9 SAVE:ea DOCUMENTS:eb BATTERY:ec BLUETOOTH:ed WLAN:ee UWB:ef UNKNOWN:f0 VIDEO_NEXT:f1 VIDEO_PREV:f2 BRIGHTNESS_CYCLE:f3 BRIGHTNESS_ZERO:f4 DISPLAY_OFF:f5 WIMAX:f6 BTN_MISC:100 BTN_0:100 BTN_1:101 BTN_2:102 BTN_3:103 BTN_4:104 BTN_5:105 BTN_6:106 BTN_7:107 BTN_8:108 BTN_9:109 BTN_MOUSE:110 BTN_LEFT:110 BTN_RIGHT:111 BTN_MIDDLE:112 BTN_SIDE:113 BTN_EXTRA:114 BTN_FORWARD:115 BTN_BACK:116 BTN_TASK:117 BTN_JOYSTICK:120 BTN_TRIGGER:120 BTN_THUMB:121 BTN_THUMB2:122 BTN_TOP:123 BTN_TOP2:124 BTN_PINKIE:125 BTN_BASE:126 BTN_BASE2:127 BTN_BASE3:128 BTN_BASE4:129 BTN_BASE5:12a BTN_BASE6:12b BTN_DEAD:12f BTN_GAMEPAD:130 BTN_A:130 BTN_B:131 BTN_C:132 BTN_X:133 BTN_Y:134 BTN_Z:135 BTN_TL:136 BTN_TR:137 BTN_TL2:138 BTN_TR2:139 BTN_SELECT:13a BTN_START:13b BTN_MODE:13c BTN_THUMBL:13d BTN_THUMBR:13e BTN_DIGI:140 BTN_TOOL_PEN:140 BTN_TOOL_RUBBER:141 BTN_TOOL_BRUSH:142 BTN_TOOL_PENCIL:143 BTN_TOOL_AIRBRUSH:144 BTN_TOOL_FINGER:145 BTN_TOOL_MOUSE:146 BTN_TOOL_LENS:147 BTN_TOUCH:14a BTN_STYLUS:14b BTN_STYLUS2:14c BTN_TOOL_DOUBLETAP:14d BTN_TOOL_TRIPLETAP:14e BTN_TOOL_QUADTAP:14f BTN_WHEEL:150 BTN_GEAR_DOWN:150 BTN_GEAR_UP:151 OK:160 SELECT:161 GOTO:162 CLEAR:163 POWER2:164 OPTION:165 INFO:166 TIME:167 VENDOR:168 ARCHIVE:169 PROGRAM:16a CHANNEL:16b FAVORITES:16c EPG:16d PVR:16e MHP:16f LANGUAGE:170 TITLE:171 SUBTITLE:172 ANGLE:173 ZOOM:174 MODE:175 KEYBOARD:176 SCREEN:177 PC:178 TV:179 TV2:17a VCR:17b VCR2:17c SAT:17d SAT2:17e CD:17f TAPE:180 RADIO:181 TUNER:182 PLAYER:183 TEXT:184 DVD:185 AUX:186 MP3:187 AUDIO:188 VIDEO:189 DIRECTORY:18a LIST:18b MEMO:18c CALENDAR:18d RED:18e GREEN:18f YELLOW:190 BLUE:191 CHANNELUP:192 CHANNELDOWN:193 FIRST:194 LAST:195 AB:196 NEXT:197 RESTART:198 SLOW:199 SHUFFLE:19a BREAK:19b PREVIOUS:19c DIGITS:19d TEEN:19e TWEN:19f VIDEOPHONE:1a0 GAMES:1a1 ZOOMIN:1a2 ZOOMOUT:1a3 ZOOMRESET:1a4 WORDPROCESSOR:1a5 EDITOR:1a6 SPREADSHEET:1a7 GRAPHICSEDITOR:1a8 PRESENTATION:1a9 DATABASE:1aa NEWS:1ab VOICEMAIL:1ac ADDRESSBOOK:1ad MESSENGER:1ae DISPLAYTOGGLE:1af SPELLCHECK:1b0 LOGOFF:1b1 DOLLAR:1b2 EURO:1b3 FRAMEBACK:1b4 FRAMEFORWARD:1b5 CONTEXT_MENU:1b6 MEDIA_REPEAT:1b7 DEL_EOL:1c0 DEL_EOS:1c1 INS_LINE:1c2 DEL_LINE:1c3 FN:1d0 FN_ESC:1d1 FN_F1:1d2 FN_F2:1d3 FN_F3:1d4 FN_F4:1d5 FN_F5:1d6 FN_F6:1d7 FN_F7:1d8 FN_F8:1d9 FN_F9:1da FN_F10:1db FN_F11:1dc FN_F12:1dd FN_1:1de FN_2:1df FN_D:1e0 FN_E:1e1 FN_F:1e2 FN_S:1e3 FN_B:1e4 BRL_DOT1:1f1 BRL_DOT2:1f2 BRL_DOT3:1f3 BRL_DOT4:1f4 BRL_DOT5:1f5 BRL_DOT6:1f6 BRL_DOT7:1f7 BRL_DOT8:1f8 BRL_DOT9:1f9 BRL_DOT10:1fa NUMERIC_0:200 NUMERIC_1:201 NUMERIC_2:202 NUMERIC_3:203 NUMERIC_4:204 NUMERIC_5:205 NUMERIC_6:206 NUMERIC_7:207 NUMERIC_8:208 NUMERIC_9:209 NUMERIC_STAR:20a NUMERIC_POUND:20b RFKILL:20c';

const hex = (s: string) => parseInt(s, 16);
const linuxToSet1 = new Map<number, number>(LINUX_TO_SET1.split(' ').map((p) => p.split(':').map(hex) as [number, number]));
/** libvirt's tables are C arrays: row 0 is zero in every codeset, so keycode 0 is valid in each. */
const linuxCodes = new Set<number>([0, ...linuxToSet1.keys(), ...LINUX_ONLY.split(' ').map(hex)]);
const names = new Map<string, number>(
  LINUX_NAMES.split(' ').map((p) => {
    const [n, k] = p.split(':') as [string, string];
    return [n.startsWith('BTN_') ? n : `KEY_${n}`, hex(k)];
  }),
);

const set1 = [...linuxToSet1.values()];
const fromSet1 = (prefixed: (code: number) => number) => new Set([0, ...set1.map((s) => (s >= 0xe000 ? prefixed(s & 0xff) : s))]);
/** xt and atset1 are the set 1 table itself, a prefixed key as 0xe0XX. */
const XT = new Set([0, ...set1]);
const XT_KBD = fromSet1((c) => 0x100 | c);
const QNUM = fromSet1((c) => 0x80 | c);
/** qnum of each linux keycode that has a scancode. */
const LINUX_TO_QNUM = new Map([...linuxToSet1].map(([k, s]) => [k, s >= 0xe000 ? 0x80 | (s & 0xff) : s]));

const valid = (codeset: KeyCodeset): ReadonlySet<number> => {
  switch (codeset) {
    case 'linux':
      return linuxCodes;
    case 'xt':
    case 'atset1':
      return XT;
    case 'xt_kbd':
      return XT_KBD;
    default:
      return QNUM;
  }
};

/**
 * virsh's reading of one keycode argument (vshKeyCodeGetInt, virKeycodeValueFromString): a number
 * (decimal, 0x hex or 0 octal), or a name of the codeset; only linux has names among those here.
 */
export const parseKeycode = (codeset: KeyCodeset, arg: string): number => {
  if (/^(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)$/i.test(arg)) {
    const n = arg.toLowerCase().startsWith('0x') ? parseInt(arg.slice(2), 16) : arg.length > 1 && arg.startsWith('0') ? parseInt(arg, 8) : Number(arg);
    if (n <= 0xffff) return n;
  }
  const named = codeset === 'linux' ? names.get(arg) : undefined;
  if (named === undefined) throw virtError('invalid-arg', `invalid keycode: '${arg}'`);
  return named;
};

/** virsh's check of --codeset (virKeycodeSetTypeFromString). */
export const parseCodeset = (arg: string): KeyCodeset => {
  const c = KeyCodeset.safeParse(arg);
  if (!c.success) throw virtError('invalid-arg', `unknown codeset: '${arg}'`);
  return c.data;
};

/** The driver's check of each keycode (testDomainSendKey: INTERNAL_ERROR "invalid keycode N of X codeset"). */
export const checkKeycodes = (k: KeyPress): void => {
  if (!SUPPORTED.has(k.codeset)) throw virtError('operation-unsupported', `the ${k.codeset} codeset is not supported: use linux, xt, atset1, xt_kbd or qnum`);
  const codes = valid(k.codeset);
  for (const code of k.keycodes) if (!codes.has(code)) throw virtError('internal-error', `invalid keycode ${code} of ${k.codeset} codeset`);
};

/**
 * qemuDomainSendKey: every keycode as qemu's number (qnum). A key with no scancode (a linux code
 * beyond the keyboard's) is libvirt's "cannot translate keycode N of X codeset to qnum keycode".
 */
export const toQnum = (k: KeyPress): number[] => {
  checkKeycodes(k);
  return k.keycodes.map((code) => {
    let q: number | undefined;
    switch (k.codeset) {
      case 'linux':
        q = code === 0 ? 0 : LINUX_TO_QNUM.get(code);
        break;
      case 'xt':
      case 'atset1':
        q = code >= 0xe000 ? 0x80 | (code & 0x7f) : code;
        break;
      case 'xt_kbd':
        q = code >= 0x100 ? 0x80 | (code & 0x7f) : code;
        break;
      default:
        q = code;
    }
    if (q === undefined) throw virtError('internal-error', `cannot translate keycode ${code} of ${k.codeset} codeset to qnum keycode`);
    return q;
  });
};

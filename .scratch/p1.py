p='contracts/domain/decider.ts'
s=open(p).read()
def rep(a,b):
    global s
    assert a in s, a[:60]
    s=s.replace(a,b)
rep("""  hostLost?: boolean;
  lastObserved?: ObservedState;
}""","""  hostLost?: boolean;
  lastObserved?: ObservedState;
  /** The lease revision of the newest host loss recorded on this domain: each loss marks it once. */
  hostLostRevision?: number;
  /** Its host is being evacuated: once its guest is stopped there, it moves (and starts if `start`). */
  evacuating?: { fromHostId: string; start?: 'running' | 'paused' };
}""")
rep("""    case 'host-lost':
      return decideHostLost(s, cmd.hostId);
    case 'failover':
      return decideFailover(s, cmd, now);
  }
};""","""    case 'host-lost':
      return decideHostLost(s, cmd.hostId, cmd.leaseRevision);
    case 'failover':
      return decideFailover(s, cmd, now);
    case 'evacuate':
      return decideEvacuate(s, cmd, now);
    case 'evacuate-move':
      return decideEvacuateMove(s, cmd, now);
  }
};""")
old_hl=s[s.index("/**\n * The domain's host was declared lost."):s.index("/** Does the domain want its guest running")]
rep(old_hl, open('.scratch/hl.ts').read())
rep("""const wantsToRun = (s: DomainAggregate): boolean => isActive(s.desired);""","""const wantsToRun = (s: DomainAggregate): boolean => isActive(s.desired) || s.evacuating?.start !== undefined;""")
rep("""    requestedEvent(moved, 'start', now, cmd.timeoutMs, { paused: s.desired === 'paused' }),
  ];
};""","""    requestedEvent(moved, 'start', now, cmd.timeoutMs, { paused: (s.evacuating?.start ?? s.desired) === 'paused' }),
  ];
};
""" + open('.scratch/evac.ts').read())
rep("""      return { ...base, hostLost: true, lastObserved: s.hostLost ? s.lastObserved : s.observed, observed: { state: 'nostate', reason: 'unknown' } };
    case 'DomainFailedOver':
      // The old host's guest is fenced: nothing runs until the new host starts it.
      return {
        ...base,
        hostId: e.data.hostId,
        placementEpoch: e.data.placementEpoch,
        hostLost: false,
        observed: { state: 'shutoff', reason: 'unknown' },
        interfaces: [],
      };""", open('.scratch/evolve.ts').read())
open(p,'w').write(s)
